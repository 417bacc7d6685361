// The knowledge editor: owns the model, the expert bank (MoKE or WISE), the router and the replay buffer;
// applies one edit at a time and publishes an immutable, versioned KnowledgeView for answering.
//
// Thread-safety: ApplyEdit, RestoreSnapshot and Rollback must be called from one thread at a time (the
// editor thread). Current(), Validate*() and everything on a KnowledgeView are safe from any thread:
// a view never changes after it is published. No exception leaves this class.
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
};

struct EditResult {
  uint64_t version = 0;  // the version that contains this edit
  int expert = -1;
  bool new_concept = false;
  int iterations = 0;
  double loss = 0;
  double seconds = 0;
};

// How a prompt was routed.
struct Route {
  int expert = -1;                   // -1: the original weights
  std::vector<double> deltas;        // Delta_i(x) per expert (or memory for WISE); empty with the nearest gate
  std::vector<double> router_probs;  // empty for WISE and with the nearest gate
  double threshold = 0;              // the Delta gate's threshold, or the nearest gate's cosine floor
  double nearest_cosine = 0;         // nearest gate: cosine of the nearest held edit (0 when none)
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
  std::map<std::string, int64_t> memory_bytes;  // "model", "experts", "experts_emr", "router", ...
};

class KnowledgeState;  // defined in knowledge_state.h (needs LibTorch)

// An immutable published version of the edited knowledge.
class KnowledgeView {
 public:
  explicit KnowledgeView(std::shared_ptr<const KnowledgeState> state);
  uint64_t version() const;
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
  // Checks an edit without changing anything (empty text, non-UTF-8, too many answer tokens, question
  // past the context window). Thread-safe.
  absl::Status ValidateEdit(const EditRequest& edit) const;
  // Applies one edit and, with publish = true, publishes the new version. With publish = false the edit
  // is held back until Publish(), so that a server can make it durable before any reader sees it.
  // On error nothing is published and the state is as before; that includes running out of `budget`
  // (CANCELLED / DEADLINE_EXCEEDED), which training checks at every iteration.
  absl::StatusOr<EditResult> ApplyEdit(const EditRequest& edit, bool publish = true, const Budget& budget = Budget());
  // Publishes the latest applied state (a no-op when it is already published). Editor thread.
  void Publish();

  // The latest published version (cheap: a shared pointer copy).
  std::shared_ptr<const KnowledgeView> Current() const;
  // Editor thread only (reads state that ApplyEdit changes).
  EditorStats Stats() const;

  // Writes the current state (experts or their EMR form, masks, router, thresholds, replay buffer, edit
  // history, RNG state) atomically to `path` (temp file, fsync, rename), with a checksum.
  absl::Status SaveSnapshot(const std::string& path) const;
  // Replaces the state with a snapshot and publishes it. A corrupt or mismatched snapshot is refused
  // (DATA_LOSS / FAILED_PRECONDITION) and the state is unchanged. The restored state gets version
  // `as_version` when given (a server makes a restore a new version above every earlier one, so that a
  // version number never names two states), else the snapshot's own version.
  absl::Status RestoreSnapshot(const std::string& path, std::optional<uint64_t> as_version = std::nullopt);
  // Reads only a snapshot's version (for listing); verifies the checksum.
  static absl::StatusOr<uint64_t> SnapshotVersion(const std::string& path);

 private:
  class Impl;
  explicit Editor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moke
