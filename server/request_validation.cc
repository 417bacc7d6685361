#include "server/request_validation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/common/utf8.h"
#include "core/storage/edit_log.h"
#include "core/storage/snapshot_store.h"

namespace moke::server {

static_assert(kMaxParaphrases == storage::kMaxParaphrases, "the editor's and the edit log's paraphrase limits agree");

namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

bool IsSpaceOrControl(uint32_t c) {
  return c <= 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) ||
         (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0xFEFF;
}

// The rules every text field follows, in this order: present (when required), within its byte limit,
// UTF-8, not blank. `setting` names the flag that sets the limit (empty: a fixed limit).
absl::Status CheckText(absl::string_view field, const std::string& text, size_t max_bytes, absl::string_view setting,
                       bool required) {
  if (text.empty()) return required ? Invalid(field, "is empty") : absl::OkStatus();
  if (text.size() > max_bytes) {
    return Invalid(field, absl::StrCat("is ", text.size(), " bytes; the limit is ", max_bytes,
                                       setting.empty() ? "" : absl::StrCat(" (", setting, ")")));
  }
  if (!IsValidUtf8(text)) return Invalid(field, "is not valid UTF-8");
  if (IsBlank(text)) return Invalid(field, "is only whitespace or control characters");
  return absl::OkStatus();
}

absl::Status CheckCount(absl::string_view field, size_t n, size_t max) {
  if (n > max) return Invalid(field, absl::StrCat("has ", n, " entries; the limit is ", max));
  return absl::OkStatus();
}

absl::Status CheckList(absl::string_view field, const std::vector<std::string>& items, size_t max_items,
                       const RequestLimits& limits) {
  if (absl::Status s = CheckCount(field, items.size(), max_items); !s.ok()) return s;
  for (size_t i = 0; i < items.size(); ++i) {
    absl::Status s =
        CheckText(absl::StrCat(field, "[", i, "]"), items[i], limits.max_question_bytes, "--max-question-bytes", true);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckRequestId(const std::string& id, bool required) {
  return CheckText("request_id", id, kMaxRequestIdBytes, "", required);
}

}  // namespace

bool IsBlank(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t c;
    size_t n;
    if (b < 0x80) {
      c = b, n = 1;
    } else if (b < 0xE0) {
      c = b & 0x1F, n = 2;
    } else if (b < 0xF0) {
      c = b & 0x0F, n = 3;
    } else {
      c = b & 0x07, n = 4;
    }
    if (i + n > s.size()) return false;  // not UTF-8: not this function's question
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    if (!IsSpaceOrControl(c)) return false;
    i += n;
  }
  return true;
}

absl::Status ValidateEdit(const EditSubmission& e, const RequestLimits& limits) {
  for (absl::Status s : {
           CheckText("question", e.question, limits.max_question_bytes, "--max-question-bytes", true),
           CheckText("answer", e.answer, limits.max_answer_bytes, "--max-answer-bytes", true),
           CheckRequestId(e.request_id, false),
           CheckText("subject", e.subject, limits.max_question_bytes, "--max-question-bytes", false),
           CheckList("paraphrases", e.paraphrases, kMaxParaphrases, limits),
           CheckList("unrelated_prompts", e.unrelated, storage::kMaxUnrelatedPrompts, limits),
       }) {
    if (!s.ok()) return s;
  }
  // The edit log record it becomes (subject and paraphrases counted too, for when the log carries them).
  size_t bytes = storage::kPayloadFixedBytes +
                 (4 + e.unrelated.size() + 1 + e.paraphrases.size()) * storage::kPayloadBytesPerString +
                 e.question.size() + e.answer.size() + e.request_id.size() + e.subject.size();
  for (const auto& u : e.unrelated) bytes += u.size();
  for (const auto& p : e.paraphrases) bytes += p.size();
  if (bytes > storage::kMaxPayloadBytes) {
    return Invalid("the edit", absl::StrCat("is ", bytes, " bytes as an edit log record; the limit is ",
                                            storage::kMaxPayloadBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateRetract(const RetractSubmission& r, const RequestLimits& limits) {
  if (r.question.empty() == (r.edit_id == 0)) return Invalid("question or edit_id", "must be given, not both");
  if (absl::Status s = CheckText("question", r.question, limits.max_question_bytes, "--max-question-bytes", false);
      !s.ok()) {
    return s;
  }
  return CheckRequestId(r.request_id, false);
}

absl::Status ValidateAsk(const AskQuery& q, const RequestLimits& limits) {
  if (absl::Status s = CheckText("question", q.question, limits.max_question_bytes, "--max-question-bytes", true);
      !s.ok()) {
    return s;
  }
  if (q.max_new_tokens < 0 || q.max_new_tokens > limits.max_new_tokens) {
    return Invalid("max_new_tokens", absl::StrCat("is ", q.max_new_tokens, "; it must be in [0, ",
                                                  limits.max_new_tokens, "] (the editor's max_new_tokens)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateScore(const ScoreQuery& q, const RequestLimits& limits) {
  if (absl::Status s = CheckText("prompt", q.prompt, limits.max_question_bytes, "--max-question-bytes", true);
      !s.ok()) {
    return s;
  }
  return CheckText("answer", q.answer, limits.max_answer_bytes, "--max-answer-bytes", true);
}

absl::Status ValidateRequestId(const std::string& request_id) { return CheckRequestId(request_id, true); }

absl::Status ValidateSnapshotName(const std::string& name) {
  constexpr size_t kMaxNameBytes = 40;
  if (absl::Status s = CheckText("name", name, kMaxNameBytes, "", true); !s.ok()) return s;
  if (!storage::SnapshotStore::IsValidName(name)) {
    return Invalid("name", absl::StrCat("'", name, "' is not a snapshot name (snap-<version>.bin)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateListEdits(uint64_t /*start*/, int limit) {
  if (limit < 0) return Invalid("limit", absl::StrCat("is ", limit, "; it must be >= 0"));
  return absl::OkStatus();
}

}  // namespace moke::server
