// The edit-stream format (JSON lines; documented in docs/streams.md): parsing with line-numbered errors,
// validation, and writing.
//
// One line per edit, in the order the edits are applied:
//   {"step":1,"qid":0,"question":"...","answer":"...","rephrase":"...","loc":"...","loc_ans":"...",
//    "subject":"...","final":false}
// plus optional fields (absent = empty): hints sent with the edit ("paraphrases", "hint_unrelated") and
// extra scored prompts ("hard_loc", "reworded", "rel_spec", "aliases"). A fact (qid) may be edited several
// times (sLKE), in the same words or in others (a re-edit worded otherwise); its last line carries
// final=true: that question and answer are the ones evaluated. Hints and scored
// prompts are disjoint across the whole stream (checked), so nothing scored was ever sent with an edit.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moke::bench {

// A scored prompt with its answer (the positions that are teacher-forced).
struct PromptAnswer {
  std::string prompt;
  std::string answer;
  bool operator==(const PromptAnswer& o) const { return prompt == o.prompt && answer == o.answer; }
};

// EditFact takes at most this many paraphrases (proto EditFactRequest.paraphrases).
inline constexpr size_t kMaxParaphrases = 16;

struct StreamEdit {
  int64_t step = 0;      // strictly increasing, >= 1
  std::string qid;       // the fact's id (a JSON string or non-negative integer in the file)
  std::string question;  // the prompt that is edited (may differ between a fact's edits)
  std::string answer;    // the answer this edit teaches
  std::string rephrase;  // a paraphrase of the question ("" = no generality check for this question)
  std::string loc;       // an unrelated prompt ("" = no locality check for this question)
  std::string loc_ans;   // its answer (the positions scored for locality)
  std::string subject;   // what the question is about (sent as EditFactRequest.subject; "" = not sent)
  bool final = false;    // true on the question's last edit
  // Hints, sent with this edit (may differ between a question's edits; never scored anywhere):
  std::vector<std::string> paraphrases;     // EditFactRequest.paraphrases (at most kMaxParaphrases)
  std::vector<std::string> hint_unrelated;  // EditFactRequest.unrelated_prompts
  // Scored prompts (shared by all edits of a fact, like rephrase and loc):
  std::vector<PromptAnswer> hard_loc;  // same form, another never-edited subject: must be left alone
  std::vector<std::string> reworded;   // the question in another form: must get the final answer
  std::vector<PromptAnswer> rel_spec;  // the same subject, another relation: must be left alone
  std::vector<PromptAnswer> aliases;   // the subject by another name: must get the final answer
  int line = 0;          // 1-based line in the file (0 when built in memory)
};

// The evaluation view of one question: its last edit.
struct StreamQuestion {
  std::string qid;
  size_t final_index = 0;  // index into EditStream::edits of the final edit
  int num_answers = 0;     // how many edits the question has in the stream
};

struct EditStream {
  std::string name;  // used in request ids: "<name>:<step>"
  std::vector<StreamEdit> edits;
};

// Calls `fn(line, text)` for every line of `content` that is not blank (1-based line numbers; a trailing
// "\r" removed) and stops at the first error `fn` returns.
absl::Status ForEachLine(absl::string_view content,
                         const std::function<absl::Status(int line, absl::string_view text)>& fn);

// Parses and validates a JSON-lines stream. Errors are INVALID_ARGUMENT and start with
// "<source>:<line>: " naming the first bad line and the reason. Blank lines are skipped; unknown fields are
// ignored. Nothing is partially returned.
absl::StatusOr<EditStream> ParseStream(absl::string_view content, absl::string_view source_name);

// Reads `path` and parses it; the stream's name is the file name without its extension.
absl::StatusOr<EditStream> ReadStreamFile(const std::string& path);

// Checks the invariants ParseStream checks (used for streams built in memory too), among them that no hint
// (paraphrases, hint_unrelated) equals a scored prompt (question, rephrase, loc, hard_loc, reworded,
// rel_spec, aliases) of any edit, compared as NormalizeAnswer does.
absl::Status ValidateStream(const EditStream& stream, absl::string_view source_name);

// The questions in order of first appearance, each with its final edit.
std::vector<StreamQuestion> StreamQuestions(const EditStream& stream);

// One JSON object per line, fields in the documented order (optional fields only when non-empty, so a
// stream without them is written in the nine-field form), UTF-8 kept as is.
std::string SerializeStreamEdit(const StreamEdit& edit);
absl::Status WriteStreamFile(const EditStream& stream, const std::string& path);

}  // namespace moke::bench
