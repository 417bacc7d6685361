// Continuous batching of greedy decodes (issue 17): the rows of many requests go through the model in one
// forward per step. Each row keeps its own KV cache (a slot of the decoder's per-layer buffers), its own
// position, and its own down-projection at the layer its override names: rows that share an override
// weight are multiplied together, the others by the layer's own weight (LoRAX/S-LoRA's "different adapters
// in one batch", with moke's expert as the adapter). A request joins after its prompt's forward
// (BatchDecoder::Start: the prompts of every request that arrives together in one forward) and leaves at
// the step that finishes it; the others carry on.
//
// Every row gets the tokens LlamaModel::Generate gives it alone: the same greedy choice over well-formed
// UTF-8, the same stops (EOS or BOS, the token limit clamped to the context window), the same budget check
// before every forward after the first.
//
// Thread-safety: Start is static and safe from any thread. A BatchDecoder belongs to one thread: Join, Step
// and Clear must not overlap. The model must outlive the decoder. Start, Join and Step may throw
// c10::Error; callers in core/ catch it at their boundary (GuardTorch).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/common/budget.h"
#include "core/model/llama_model.h"

namespace moke {

// A prompt's pass up to layer `layer`'s down-projection, kept by whoever computed it (an Ask's route runs
// exactly this), so that its forward goes on from there instead of starting again.
struct PromptPrefix {
  int64_t layer = -1;      // -1: none
  KvCache cache;           // keys and values of layers 0..layer, [1, KV, T, hd]
  LlamaModel::Split split; // h_mid [1, T, D] and a [1, T, F], the model's dtype
};

// One request's decoding state. Movable; owned by whoever holds it (the caller, then the decoder).
struct DecodeRow {
  KvCache cache;                                 // keys/values of the prompt, until Join takes them
  std::shared_ptr<const DownOverride> override;  // null: the original weights everywhere
  Budget budget;
  LlamaModel::Generation generation;             // the tokens so far; `stop` once finished
  int max_new_tokens = 0;                        // after the context-window clamp
  int pending = 0;                               // UTF-8 continuation bytes the current character still needs
  bool finished = false;
};

class BatchDecoder {
 public:
  // max_rows >= 1: how many requests decode together.
  BatchDecoder(const LlamaModel& model, int max_rows);
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // What a request asks the decoder for.
  struct Request {
    std::vector<int64_t> prompt_ids;               // BOS, then the prompt
    int max_new_tokens = 0;
    std::shared_ptr<const DownOverride> override;  // null: the original weights everywhere
    Budget budget;
    PromptPrefix prefix;  // optional: the prompt's pass up to a layer, to go on from
  };
  // Generate's first step for each request: the prompts' forward (one forward for all of them, right-
  // padded to the longest; each row with its own override) and each one's first greedy token. When every
  // request brings a prefix at the same layer, the forward starts there (the layers below are not run
  // again). A row is
  // finished when that already ends it (no room, budget spent, EOS, a limit of one token). Rows come back
  // in the order of `requests`.
  static std::vector<DecodeRow> Start(const LlamaModel& model, std::vector<Request> requests);

  int rows() const { return static_cast<int>(rows_.size()); }
  int max_rows() const { return max_rows_; }

  // Adds an unfinished row from Start (its cache is copied into the decoder's buffers); `tag` names it in
  // Step's events. Requires rows() < max_rows().
  void Join(DecodeRow row, uint64_t tag);

  struct Event {
    uint64_t tag = 0;
    int64_t token = -1;                 // the token this step appended to the row (-1: none, it ended)
    bool whole_characters = true;       // the row's tokens end with a whole UTF-8 character
    bool finished = false;
    LlamaModel::Generation generation;  // when finished: the whole decode
  };
  // One forward for every row (shape [rows, 1]), then each row's next token; finished rows leave the batch.
  // One event per row that was in the batch, in no particular order. Nothing happens with no rows.
  std::vector<Event> Step();

  // Drops every row; returns their tags.
  std::vector<uint64_t> Clear();

 private:
  struct Slot {
    uint64_t tag = 0;
    DecodeRow row;       // its cache is empty: the keys/values live in k_/v_ at this slot's index
    int64_t length = 0;  // positions held in the buffers (prompt + tokens fed)
  };
  // Makes every slot hold at least `positions` positions.
  void Reserve(int64_t positions);
  // Moves the last slot into slot i (its buffers too) and drops the last.
  void Remove(size_t i);
  // a [n, T, F] -> [n, T, D]: layer l's down-projection, row i with overrides[i]'s weight when that
  // override is for layer l (null or another layer: the layer's own weight). Rows that share a weight are
  // multiplied together.
  static at::Tensor DownProduct(const LlamaModel& model, const at::Tensor& a, int64_t l,
                                const std::vector<const DownOverride*>& overrides);

  const LlamaModel& model_;
  const int max_rows_;
  std::vector<Slot> rows_;
  // Every slot's keys and values, [layers, 2 (keys, values), max_rows, n_kv_heads, capacity_, head_dim]: one
  // tensor, so that joining or moving a row is one copy for all layers.
  at::Tensor kv_;
  int64_t capacity_ = 0;
};

}  // namespace moke
