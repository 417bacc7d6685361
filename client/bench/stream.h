// The edit-stream format (JSON lines; documented in docs/streams.md): parsing with line-numbered errors,
// validation, and writing.
//
// One line per edit, in the order the edits are applied:
//   {"step":1,"qid":0,"question":"...","answer":"...","rephrase":"...","loc":"...","loc_ans":"...",
//    "subject":"...","final":false}
// A question (qid) may appear several times (sLKE); its last line carries final=true and is the answer
// that is evaluated. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moke::bench {

struct StreamEdit {
  int64_t step = 0;      // strictly increasing, >= 1
  std::string qid;       // the question's id (a JSON string or non-negative integer in the file)
  std::string question;  // the prompt that is edited
  std::string answer;    // the answer this edit teaches
  std::string rephrase;  // a paraphrase of the question ("" = no generality check for this question)
  std::string loc;       // an unrelated prompt ("" = no locality check for this question)
  std::string loc_ans;   // its answer (the positions scored for locality)
  std::string subject;   // informational
  bool final = false;    // true on the question's last edit
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

// Parses and validates a JSON-lines stream. Errors are INVALID_ARGUMENT and start with
// "<source>:<line>: " naming the first bad line and the reason. Blank lines are skipped; unknown fields are
// ignored. Nothing is partially returned.
absl::StatusOr<EditStream> ParseStream(absl::string_view content, absl::string_view source_name);

// Reads `path` and parses it; the stream's name is the file name without its extension.
absl::StatusOr<EditStream> ReadStreamFile(const std::string& path);

// Checks the invariants ParseStream checks (used for streams built in memory too).
absl::Status ValidateStream(const EditStream& stream, absl::string_view source_name);

// The questions in order of first appearance, each with its final edit.
std::vector<StreamQuestion> StreamQuestions(const EditStream& stream);

// One JSON object per line, fields in the documented order, UTF-8 kept as is.
std::string SerializeStreamEdit(const StreamEdit& edit);
absl::Status WriteStreamFile(const EditStream& stream, const std::string& path);

}  // namespace moke::bench
