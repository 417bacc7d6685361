// moke-bench: builds edit streams from the shared ZsRE/WikiCF files, replays them against a running
// moke-server and scores the result by EasyEdit's protocol, and measures Ask latency under load.
//
//   moke-bench build-stream --dataset FILE --questions T [--answers P] [--seed S] --out STREAM.jsonl
//   moke-bench validate-stream STREAM.jsonl
//   moke-bench run  --server 127.0.0.1:PORT --stream STREAM.jsonl --out DIR [--eval-every N]
//   moke-bench load --server 127.0.0.1:PORT --clients N --seconds S [--stream STREAM.jsonl]
//   moke-bench load --server 127.0.0.1:PORT --baseline 127.0.0.1:PORT2 --clients N --seconds S [--rounds R]
//   moke-bench follow-lag --editor 127.0.0.1:PORT --follower 127.0.0.1:PORT2 --edits N [--token T]
//
// Exit codes: 0 success, 1 error (the message names the line, the setting or the RPC status), 2 usage.
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "client/bench/follow_lag.h"
#include "client/bench/load.h"
#include "client/bench/runner.h"
#include "client/bench/stream.h"
#include "client/bench/stream_builder.h"

namespace {

using namespace moke::bench;

int Fail(const absl::Status& status) {
  std::cerr << "moke-bench: error: " << status.message() << "\n";
  return 1;
}

absl::Status BuildStreamCommand(const std::string& dataset_path, const std::string& format_name,
                                const BuildOptions& base, const std::string& out) {
  auto format = ParseDatasetFormat(format_name);
  if (!format.ok()) return format.status();
  auto dataset = LoadDataset(dataset_path, *format);
  if (!dataset.ok()) return dataset.status();
  BuildOptions options = base;
  options.name = std::filesystem::path(out).stem().string();
  auto stream = BuildStream(*dataset, options);
  if (!stream.ok()) return stream.status();
  if (auto parent = std::filesystem::path(out).parent_path(); !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
  }
  if (auto s = WriteStreamFile(*stream, out); !s.ok()) return s;
  const std::vector<StreamQuestion> facts = StreamQuestions(*stream);
  std::map<std::string, int> types;  // of the facts' first records (a built stream's qid is a record index)
  for (const StreamQuestion& q : facts) ++types[std::string(AnswerTypeName(dataset->records[std::stoul(q.qid)].type))];
  // Scope checks and hints, counted over the questions (their final edits).
  std::map<std::string, std::pair<int, size_t>> checks;  // field -> (questions with any, prompts)
  for (const StreamQuestion& q : facts) {
    const StreamEdit& e = stream->edits[q.final_index];
    for (auto [name, n] : {std::pair<const char*, size_t>{"hard_loc", e.hard_loc.size()},
                           {"reworded", e.reworded.size()},
                           {"rel_spec", e.rel_spec.size()},
                           {"aliases", e.aliases.size()},
                           {"paraphrases", e.paraphrases.size()},
                           {"hint_unrelated", e.hint_unrelated.size()}}) {
      checks[name].first += n > 0;
      checks[name].second += n;
    }
  }
  const std::string last_record =
      options.one_per_fact ? stream->edits.back().qid : std::to_string(options.offset + options.questions - 1);
  std::cerr << "moke-bench: wrote " << stream->edits.size() << " edits (" << options.questions << " questions x "
            << options.answers << " answers, " << DatasetFormatName(dataset->format) << " records "
            << options.offset << ".." << last_record << ", seed " << options.seed << ") to " << out;
  if (facts.size() != static_cast<size_t>(options.questions))
    std::cerr << "\n" << options.questions - static_cast<int>(facts.size()) << " of the " << options.questions
              << " records restate an earlier record's fact: they re-edit it in their own words (" << facts.size()
              << " facts evaluated)";
  std::cerr << "\nanswer types:";
  for (const auto& [t, n] : types) std::cerr << " " << t << " " << n;
  std::cerr << "\nscope checks (questions with any / prompts):";
  for (const auto& [name, c] : checks) std::cerr << " " << name << " " << c.first << "/" << c.second;
  std::cerr << "\n";
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moke-bench: edit-stream builder, replay benchmark and load test for moke-server"};
  app.require_subcommand(1);

  // build-stream
  auto* build = app.add_subcommand("build-stream", "Build an LKE/sLKE JSON-lines stream from ZsRE or WikiCF");
  std::string dataset, format = "auto", stream_out;
  BuildOptions bopt;
  build->add_option("--dataset", dataset, "ZsRE MEND json, or a KnowEdit/WikiCF json (test_cf.json, train_cf.json)")
      ->required();
  build->add_option("--format", format, "auto | zsre | wikicf (= knowedit)")->capture_default_str();
  build->add_option("-T,--questions", bopt.questions, "T: number of questions (the first T records)")->required();
  build->add_flag("--one-per-fact", bopt.one_per_fact,
                  "the first T records that ask distinct facts: a record that restates an earlier one's fact in other "
                  "words (with another new answer) is not edited, its wordings are scored as rewordings of the first");
  build->add_option("-P,--answers", bopt.answers, "P: answers per question (1 = LKE)")->capture_default_str();
  build->add_flag("--reword-reedits", bopt.reword_reedits,
                  "odd rounds edit the record's rephrase instead of its question (re-edits worded otherwise; P >= 2): "
                  "the earlier wording is scored with the final answer");
  build->add_option("--seed", bopt.seed, "seed for the alternative answers")->capture_default_str();
  build->add_option("--offset", bopt.offset, "first record used")->capture_default_str();
  build->add_option("--out", stream_out, "output stream file (.jsonl)")->required();

  // validate-stream
  auto* validate = app.add_subcommand("validate-stream", "Check a stream file (line-numbered errors)");
  std::string validate_path;
  validate->add_option("stream", validate_path, "stream file")->required();

  // run
  auto* run = app.add_subcommand("run", "Replay a stream against a server and score it");
  RunOptions ropt;
  std::string routing = "default";
  bool no_em = false, no_plot = false, no_progress = false;
  run->add_option("--server", ropt.server, "host:port")->required()->envname("MOKE_SERVER");
  run->add_option("--stream", ropt.stream_path, "stream file (.jsonl)")->required();
  run->add_option("--out", ropt.out_dir, "output folder (results.json, per_edit.csv, bench.png)")->required();
  run->add_option("--token", ropt.token, "bearer token")->envname("MOKE_TOKEN");
  run->add_option("--name", ropt.name, "stream name used in request ids (default: the file's stem)");
  run->add_option("--routing", routing, "default | router | activation | activation_router")->capture_default_str();
  run->add_option("--eval-every", ropt.eval_every, "evaluate every N edits (the accuracy curve); 0 = at the end only")
      ->capture_default_str();
  run->add_flag("!--no-unrelated", ropt.send_unrelated,
                "do not send the stream's hint_unrelated prompts with the edits (the service without x_o hints)");
  run->add_flag("!--no-paraphrases", ropt.send_paraphrases, "do not send the stream's paraphrases with the edits");
  run->add_flag("!--no-subject", ropt.send_subject,
                "do not send the stream's subject with the edits (the server finds one itself)");
  run->add_option("--retries", ropt.retries, "EditFact retries on UNAVAILABLE (same request id)")->capture_default_str();
  run->add_option("--connect-timeout", ropt.connect_timeout_s, "seconds to wait for the server to serve")
      ->capture_default_str();
  run->add_option("--edit-timeout", ropt.edit_timeout_s, "EditFact deadline, seconds")->capture_default_str();
  run->add_option("--read-timeout", ropt.read_timeout_s, "Score/Ask deadline, seconds")->capture_default_str();
  run->add_option("--plot-script", ropt.plot_script, "path to plot_bench.py");
  run->add_flag("--no-em", no_em, "skip the exact-match column (no Ask calls)");
  run->add_flag("--no-plot", no_plot, "do not draw bench.png");
  run->add_flag("--no-progress", no_progress, "no progress bar");

  // load
  auto* load = app.add_subcommand("load", "Ask latency under N concurrent clients, without and with edits");
  LoadOptions lopt;
  std::string load_routing = "default";
  bool load_no_progress = false;
  load->add_option("--server", lopt.server, "127.0.0.1:PORT (loopback only)")->required()->envname("MOKE_SERVER");
  load->add_option("--clients", lopt.clients, "concurrent Ask clients (1..64)")->capture_default_str();
  load->add_option("--seconds", lopt.seconds, "seconds per phase (1..600)")->capture_default_str();
  load->add_option("--stream", lopt.stream_path, "edits applied during the second phase");
  load->add_option("--max-new-tokens", lopt.max_new_tokens, "tokens per Ask")->capture_default_str();
  load->add_option("--routing", load_routing, "default | router | activation | activation_router")
      ->capture_default_str();
  load->add_option("--out", lopt.out_dir, "folder for load.json");
  load->add_option("--token", lopt.token, "bearer token")->envname("MOKE_TOKEN");
  load->add_option("--connect-timeout", lopt.connect_timeout_s, "seconds to wait for the server")->capture_default_str();
  load->add_flag("--no-progress", load_no_progress, "no progress line");
  load->add_option("--baseline", lopt.baseline,
                   "compare: the no-edit phase against this server too (e.g. --max-batch 1), in turns, and the ratio");
  load->add_option("--rounds", lopt.rounds, "with --baseline: rounds of both phases (1..10)")->capture_default_str();

  // follow-lag
  auto* follow_lag = app.add_subcommand("follow-lag", "Time from an edit's acknowledgement to a follower serving it");
  FollowLagOptions fopt;
  follow_lag->add_option("--editor", fopt.editor, "the editor, 127.0.0.1:PORT")->required();
  follow_lag->add_option("--follower", fopt.follower, "a follower of it (--follow), 127.0.0.1:PORT")->required();
  follow_lag->add_option("--edits", fopt.edits, "edits sent, one at a time")->capture_default_str();
  follow_lag->add_option("--token", fopt.token, "the editor's bearer token")->envname("MOKE_TOKEN");
  follow_lag->add_option("--out", fopt.out_dir, "folder for follow_lag.json");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*build) {
    if (auto s = BuildStreamCommand(dataset, format, bopt, stream_out); !s.ok()) return Fail(s);
    return 0;
  }
  if (*validate) {
    auto stream = ReadStreamFile(validate_path);
    if (!stream.ok()) return Fail(stream.status());
    const auto questions = StreamQuestions(*stream);
    std::cout << validate_path << ": ok, " << stream->edits.size() << " edits, " << questions.size()
              << " questions\n";
    return 0;
  }
  if (*run) {
    auto mode = ParseRoutingMode(routing);
    if (!mode.ok()) return Fail(mode.status());
    ropt.routing = *mode;
    ropt.exact_match = !no_em;
    ropt.plot = !no_plot;
    ropt.progress = !no_progress;
    if (auto s = RunBench(ropt); !s.ok()) return Fail(s);
    return 0;
  }
  if (*load) {
    auto mode = ParseRoutingMode(load_routing);
    if (!mode.ok()) return Fail(mode.status());
    lopt.routing = *mode;
    lopt.progress = !load_no_progress;
    if (auto s = RunLoad(lopt); !s.ok()) return Fail(s);
    return 0;
  }
  if (*follow_lag) {
    if (auto s = RunFollowLag(fopt); !s.ok()) return Fail(s);
    return 0;
  }
  return 2;
}
