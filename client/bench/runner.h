// `moke-bench run`: replays an edit stream against a running server, then evaluates by EasyEdit's
// protocol through the Score and Ask RPCs (docs/benchmarks.md).
//
//  1. Reads and validates the whole stream (a bad line stops here, before anything is sent).
//  2. Waits for the server to serve; records the unedited model's argmax tokens on every prompt that must
//     be left alone (loc, hard_loc, rel_spec; Score with original_model = true) and the unedited Rel. of
//     every final answer.
//  3. Applies the edits in order through EditFact (request_id "<stream name>:<step>", so a retried edit is
//     never applied twice) with the edit's subject and hints (paraphrases, hint_unrelated; never a scored
//     prompt, which ValidateStream guarantees), appending one row per edit to per_edit.csv; every
//     --eval-every edits it evaluates the questions seen so far (a point of the accuracy curve).
//  4. Evaluates every question's final answer: Rel., Gen., Loc., routing, the scope checks (hard_loc,
//     rel_spec, gen_reworded, aliases), exact match with and without a length hint; prints the tables;
//     writes results.json and the plot.
// An RPC error stops the run with that status; results.json is then written with "complete": false and
// everything measured so far.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moke/v1/moke.pb.h"

namespace moke::bench {

struct RunOptions {
  std::string server;             // host:port
  std::string stream_path;
  std::string out_dir;
  std::string token;              // bearer token
  std::string name;               // stream name for request ids ("" = the stream file's stem)
  moke::v1::RoutingMode routing = moke::v1::ROUTING_DEFAULT;
  int eval_every = 0;             // 0: evaluate only at the end
  int retries = 2;                // EditFact retries on UNAVAILABLE (same request_id)
  double connect_timeout_s = 30;
  double edit_timeout_s = 600;
  double read_timeout_s = 120;
  bool exact_match = true;        // run Ask for the EM column
  bool plot = true;
  std::string plot_script;        // "" = find it (plot.h)
  bool progress = true;
  bool send_unrelated = true;     // send the stream's hint_unrelated as EditFactRequest.unrelated_prompts
  bool send_paraphrases = true;   // send the stream's paraphrases as EditFactRequest.paraphrases
  bool send_subject = true;       // send the stream's subject as EditFactRequest.subject
};

absl::Status RunBench(const RunOptions& options);

absl::StatusOr<moke::v1::RoutingMode> ParseRoutingMode(absl::string_view name);  // default|router|activation|activation_router

}  // namespace moke::bench
