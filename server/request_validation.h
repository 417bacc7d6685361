// The one place where requests are checked at the server edge, for every RPC: sizes in bytes, UTF-8,
// blank text, counts, and the limits of the edit log record an edit becomes. Core checks only what needs
// the model (token counts, the context window), once, on the thread that does the work.
//
// Every rule has one message, naming the request field (as in the proto) and the limit:
//   "<field> is empty"                              "<field> is only whitespace or control characters"
//   "<field> is not valid UTF-8"                    "<field> is <n> bytes; the limit is <m> (<setting>)"
//   "<field> has <n> entries; the limit is <m>"     "<field> is <n>; it must be in [<lo>, <hi>]"
// and every failure is INVALID_ARGUMENT.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "server/requests.h"

namespace moke::server {

struct RequestLimits {
  size_t max_question_bytes = 2048;  // question, prompt, each unrelated prompt and paraphrase, subject
  size_t max_answer_bytes = 1024;
  int max_new_tokens = 64;           // the editor's max_new_tokens
};

inline constexpr size_t kMaxRequestIdBytes = 256;
inline constexpr size_t kMaxParaphrases = 16;

// True when `text` (valid UTF-8) has no character other than whitespace and control characters (ASCII
// and Unicode spaces, C0/C1 controls, NUL, zero-width spaces, the byte order mark).
bool IsBlank(std::string_view text);

absl::Status ValidateEdit(const EditSubmission& edit, const RequestLimits& limits);
absl::Status ValidateRetract(const RetractSubmission& retract, const RequestLimits& limits);
absl::Status ValidateAsk(const AskQuery& query, const RequestLimits& limits);
absl::Status ValidateScore(const ScoreQuery& query, const RequestLimits& limits);
// GetEdit: the request id is required.
absl::Status ValidateRequestId(const std::string& request_id);
absl::Status ValidateSnapshotName(const std::string& name);
absl::Status ValidateListEdits(uint64_t start, int limit);

}  // namespace moke::server
