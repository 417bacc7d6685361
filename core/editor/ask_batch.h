// AskBatcher: answers many Asks at once (issue 17). The caller's thread plans the answer (route, expert,
// length limit: ask_plan.h) and runs the prompt's forward to its first token, going on from the route's own
// pass; the batcher's one decoder thread then decodes every admitted request together, one forward per
// step for all of them (continuous batching: core/model/batch_decode.h), each with its own expert at the
// edit layer and its own KV cache. A request joins at the next step and leaves at the step that ends it. Answers are KnowledgeView::Ask's, token for
// token; each request is answered from the view it was given (a reader keeps the version it started with).
//
// Tokens can be streamed: `on_piece` receives every token as it is made, and the answer's text as soon as
// it forms whole characters.
//
// Thread-safety: Ask and Stop are safe from any thread. Callbacks run on the calling thread (an immediate
// answer) or on the decoder thread; they must be cheap and must not call back into the batcher.
//
// This header uses only the standard library and Abseil (server/ includes it without LibTorch).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/budget.h"
#include "core/editor/editor.h"

namespace moke {

// What an answer added since the previous piece.
struct AskPiece {
  std::vector<int64_t> tokens;  // the new tokens (one per step)
  std::string text;             // the new text: empty while the tokens end inside a character
};

class AskBatcher {
 public:
  struct Options {
    int max_batch = 8;  // requests decoded together, >= 1
    // An idle decoder that gets one request waits this long for others before its first step (0: none);
    // once it runs, requests join at the next step and no one waits.
    std::chrono::microseconds window{2000};
    size_t max_waiting = 256;  // planned requests waiting for a row; more: RESOURCE_EXHAUSTED
    // Called on the decoder thread after each step with the number of rows it decoded (metrics).
    std::function<void(int rows)> on_step;
  };
  // `anchor`: a view of the model every later request uses (it is kept alive until the batcher stops).
  static absl::StatusOr<std::unique_ptr<AskBatcher>> Create(Options options,
                                                           std::shared_ptr<const KnowledgeView> anchor);
  ~AskBatcher();  // Stop()

  using OnPiece = std::function<void(const AskPiece&)>;
  using Done = std::function<void(absl::StatusOr<AskResult>)>;

  // Answers `question` from `view` (max_new_tokens <= 0: the editor's default). Blocks the caller for the
  // plan (the route) and the prompt's forward, then returns; `done` is called exactly once: inline (a bad question,
  // RESOURCE_EXHAUSTED when max_waiting requests wait, UNAVAILABLE once stopping) or later from the
  // decoder thread. `on_piece` (may be empty) is called before
  // `done` for every token. The budget is checked before every forward: when it runs out the request
  // leaves the batch and `done` gets CANCELLED or DEADLINE_EXCEEDED.
  void Ask(std::shared_ptr<const KnowledgeView> view, const std::string& question, int max_new_tokens,
           std::optional<Routing> routing, const Budget& budget, OnPiece on_piece, Done done);

  // Decodes every admitted and waiting request to its end, then joins the decoder thread. Idempotent.
  void Stop();

  const Options& options() const { return options_; }

 private:
  struct Impl;
  AskBatcher(Options options, std::unique_ptr<Impl> impl);
  const Options options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moke
