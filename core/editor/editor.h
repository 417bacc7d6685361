// The knowledge editor: owns the model, the expert bank (MoKE or WISE), the router and the replay buffer;
// applies one edit at a time and publishes an immutable, versioned KnowledgeView for answering.
//
// Thread-safety: see Editor (one thread at a time changes it, checked) and KnowledgeView (immutable, safe
// from any thread). No exception leaves this class.
//
// This header uses only the standard library and Abseil, so server/ can include it without LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/budget.h"
#include "core/common/utf8.h"
#include "core/editor/editor_options.h"

namespace moke {

struct EditRequest {
  std::string question;
  std::string answer;
  // Optional prompts unrelated to this edit (the paper's x_o). Kept in a bounded pool for later edits.
  std::vector<std::string> unrelated;
  // Optional: what the question is about (must occur in it); empty: the editor finds one (scope.h).
  std::string subject;
  // Optional rewordings that must get the same answer: more keys for the scope (at most kMaxParaphrases).
  std::vector<std::string> paraphrases;
};

inline constexpr size_t kMaxParaphrases = 16;

// Which held fact to forget: the one its edit made (`version`), else the one `question` asks about.
struct RetractRequest {
  std::string question;
  uint64_t version = 0;
};

struct RetractResult {
  uint64_t version = 0;            // the version without the fact
  uint64_t retracted_version = 0;  // the version whose edit taught it
  std::string question;            // that edit's question
};

struct EditResult {
  uint64_t version = 0;  // the version that contains this edit
  std::string subject;   // the subject the edit is keyed on (given or found; empty: its wording)
  uint64_t superseded_version = 0;  // the held edit of the same fact this one replaced (0: none)
  int expert = -1;
  bool new_concept = false;
  int iterations = 0;
  double loss = 0;
  double seconds = 0;
};

// How a prompt was routed.
struct Route {
  int expert = -1;                   // -1: the original weights
  std::vector<double> deltas;        // Delta_i(x) per expert (or memory for WISE); threshold gate, or an
                                     // explicit routing mode under the fact gate
  std::vector<double> router_probs;  // as deltas; empty for WISE
  double threshold = 0;              // the Delta gate's threshold, or the fact gate's subject floor
  // Fact gate: the held fact the prompt was matched against (the best one, in scope or not).
  double subject_score = 0;          // how well the prompt names its subject (trigram Dice)
  double relation_score = 0;         // relation key cosine (1: the fact's own wording)
  std::string subject;               // the subject as the prompt names it
  uint64_t fact_version = 0;         // the version that taught the matched fact (0: none)
};

// Why an answer ended.
enum class AskStop { kEndOfAnswer, kTokenLimit };

struct AskResult {
  std::string answer;
  std::vector<int64_t> tokens;
  AskStop stop = AskStop::kTokenLimit;
  uint64_t version = 0;
  Route route;
};

struct ScoreResult {
  double token_accuracy = 0;
  double log_prob = 0;
  std::vector<int64_t> answer_tokens;
  std::vector<int64_t> argmax_tokens;
  uint64_t version = 0;
  Route route;
};

struct EditorStats {
  uint64_t version = 0;
  uint64_t edits_applied = 0;
  int num_experts = 0;
  int edit_layer = 0;
  int replay_size = 0;
  // "model", "experts" (as stored: values + mask codes, a group's shared code once),
  // "experts_per_held_edit" (experts / live edits, rounded down; 0 with none), "history" (every edit's
  // fingerprint, scope keys and texts), "per_held_edit" ((experts + history) / live edits), "router",
  // "replay" (the replay buffer's activations).
  std::map<std::string, int64_t> memory_bytes;
};

class KnowledgeState;  // defined in knowledge_state.h (needs LibTorch)

// An immutable published version of the edited knowledge.
class KnowledgeView {
 public:
  explicit KnowledgeView(std::shared_ptr<const KnowledgeState> state);
  uint64_t version() const;
  int num_experts() const;
  // Greedy answer; the route is chosen once from the question and kept for every generated token.
  // Decoding stops with CANCELLED / DEADLINE_EXCEEDED when `budget` runs out.
  absl::StatusOr<AskResult> Ask(const std::string& question, int max_new_tokens,
                                std::optional<Routing> routing = std::nullopt,
                                const Budget& budget = Budget()) const;
  // Teacher-forced token accuracy and log-probability of `answer` after `prompt`. original=true scores
  // with the unedited weights.
  absl::StatusOr<ScoreResult> Score(const std::string& prompt, const std::string& answer,
                                    std::optional<Routing> routing = std::nullopt, bool original = false) const;
  // Route only (no generation).
  absl::StatusOr<Route> RouteOf(const std::string& question, std::optional<Routing> routing = std::nullopt) const;
  // The state behind the view (LibTorch types; for benchmarks and tools in core/).
  const KnowledgeState& state() const { return *state_; }

 private:
  std::shared_ptr<const KnowledgeState> state_;
};

class Editor {
 public:
  // Loads the model and builds the unedited version 0. Errors name the setting or the file.
  static absl::StatusOr<std::unique_ptr<Editor>> Create(const EditorOptions& options);
  ~Editor();

  const EditorOptions& options() const;
  // The checks that need the tokenizer (no answer tokens, too many answer tokens, question past the
  // context window). Byte-level checks (empty text, UTF-8, sizes) are the caller's: the server's edge.
  // Thread-safe.
  absl::Status ValidateEdit(const EditRequest& edit) const;
  // Applies one edit and, with publish = true, publishes the new version. With publish = false the edit
  // is held back until Publish(), so that a server can make it durable before any reader sees it.
  // On error nothing is published and the state is as before; that includes running out of `budget`
  // (CANCELLED / DEADLINE_EXCEEDED), which training checks at every iteration.
  absl::StatusOr<EditResult> ApplyEdit(const EditRequest& edit, bool publish = true, const Budget& budget = Budget());
  // Forgets one held fact: its scope keys are removed, so that its question is answered as by the
  // unedited model again (or by another held fact it asks about), while every other held edit, and the
  // experts' weights, stay as they are. A new version; `publish` as for ApplyEdit. NOT_FOUND when no live
  // edit matches (an unknown question, or a version that is not a live edit's).
  absl::StatusOr<RetractResult> Retract(const RetractRequest& request, bool publish = true);
  // Publishes the latest applied state (a no-op when it is already published).
  void Publish();

  // The latest published version (cheap: a shared pointer copy). Thread-safe.
  std::shared_ptr<const KnowledgeView> Current() const;
  EditorStats Stats() const;

  // Writes the current state (experts or their EMR form, masks, router, thresholds, replay buffer, edit
  // history, RNG state) atomically to `path` (temp file, fsync, rename), with a checksum.
  absl::Status SaveSnapshot(const std::string& path) const;
  // Replaces the state with a snapshot, as version `as_version` when given (a restore is then a new
  // version above the current one) or as the snapshot's own; `publish` as for ApplyEdit. A corrupt or
  // mismatched snapshot is refused (DATA_LOSS / FAILED_PRECONDITION) and the state is unchanged.
  absl::Status RestoreSnapshot(const std::string& path, std::optional<uint64_t> as_version = std::nullopt,
                               bool publish = true);
  // Reads only a snapshot's version (for listing); verifies the checksum. Thread-safe.
  static absl::StatusOr<uint64_t> SnapshotVersion(const std::string& path);

  // Thread-safety of the methods not marked thread-safe: they read or change the editor's state and must
  // be called from one thread at a time (the editor thread); overlapping calls abort the process with a
  // message rather than corrupt the state.
 private:
  class Impl;
  explicit Editor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moke
