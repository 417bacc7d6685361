#include "core/model/batch_decode.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "core/model/decode_attention.h"
#include "core/model/llama_ops.h"

namespace moke {

namespace {

// The greedy choice of every row of `logits` [n, V] float32 over the ids that keep its text well-formed
// UTF-8 (LlamaModel::Generate's rule: inside a character only its continuation bytes, elsewhere no stray
// continuation byte or impossible lead byte). `pending[i] > 0`: row i is inside a character.
std::vector<int64_t> ChooseNext(const at::Tensor& logits, const std::vector<int>& pending, const at::Tensor& barred) {
  at::Tensor x = logits;
  if (barred.defined()) {
    std::vector<int64_t> inside(pending.size());
    for (size_t i = 0; i < pending.size(); ++i) inside[i] = pending[i] > 0 ? 1 : 0;
    at::Tensor which = at::tensor(inside, at::TensorOptions().dtype(at::kLong).device(logits.device()));
    at::Tensor masks = barred.index_select(0, which);  // [n, V] bool
    x = x.masked_fill(masks, -std::numeric_limits<float>::infinity());
  }
  at::Tensor best = x.argmax(-1).to(at::kCPU).contiguous();
  return std::vector<int64_t>(best.data_ptr<int64_t>(), best.data_ptr<int64_t>() + best.numel());
}

// Takes `next` into the row as Generate does: EOS or BOS ends it; otherwise the token is kept, and the row
// ends at its limit or when its budget has run out (checked before the forward that would follow).
// Returns whether a token was appended.
bool Accept(const LlamaModel& m, DecodeRow* r, int64_t next) {
  r->pending = m.Utf8PendingAfter(r->pending, next);
  if (next == m.config().eos_token_id || next == m.config().bos_token_id) {
    r->generation.stop = LlamaModel::Stop::kEndOfSequence;
    r->finished = true;
    return false;
  }
  r->generation.tokens.push_back(next);
  if (static_cast<int>(r->generation.tokens.size()) >= r->max_new_tokens) {
    r->finished = true;  // stop stays kTokenLimit
  } else if (r->budget.exhausted()) {
    r->generation.stop = LlamaModel::Stop::kBudget;
    r->finished = true;
  }
  return true;
}

}  // namespace

BatchDecoder::BatchDecoder(const LlamaModel& model, int max_rows) : model_(model), max_rows_(std::max(max_rows, 1)) {
  rows_.reserve(max_rows_);
}

BatchDecoder::~BatchDecoder() = default;

std::vector<DecodeRow> BatchDecoder::Start(const LlamaModel& m, std::vector<Request> requests) {
  at::InferenceMode guard;
  std::vector<DecodeRow> rows(requests.size());
  std::vector<size_t> run;  // the requests that need the forward
  int64_t longest = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    Request& q = requests[i];
    DecodeRow& r = rows[i];
    r.override = std::move(q.override);
    r.budget = q.budget;
    const int64_t room = m.config().max_position_embeddings - static_cast<int64_t>(q.prompt_ids.size());
    r.max_new_tokens = static_cast<int>(std::min<int64_t>(q.max_new_tokens, std::max<int64_t>(room, 0)));
    if (r.max_new_tokens <= 0 || q.prompt_ids.empty()) {
      r.finished = true;
    } else if (q.budget.exhausted()) {
      r.generation.stop = LlamaModel::Stop::kBudget;
      r.finished = true;
    } else {
      run.push_back(i);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(q.prompt_ids.size()));
    }
  }
  if (run.empty()) return rows;
  const int64_t n = static_cast<int64_t>(run.size());
  // Right padding needs no mask: attention is causal, so no real position sees a padded one.
  std::vector<int64_t> ids(n * longest, m.config().bos_token_id), last(n);
  std::vector<const DownOverride*> overrides(n);
  for (int64_t j = 0; j < n; ++j) {
    const std::vector<int64_t>& p = requests[run[j]].prompt_ids;
    std::copy(p.begin(), p.end(), ids.begin() + j * longest);
    last[j] = static_cast<int64_t>(p.size()) - 1;
    overrides[j] = rows[run[j]].override.get();
  }
  // Where the forward starts: at the prefixes' layer when every request brings one at the same layer.
  // (A row whose override is below that layer needs its prompt run whole.)
  int64_t from = requests[run[0]].prefix.layer;
  for (size_t j = 0; j < run.size(); ++j) {
    const bool fits = requests[run[j]].prefix.layer == from && (overrides[j] == nullptr || overrides[j]->layer >= from);
    if (!fits) from = -1;
  }
  KvCache cache;
  at::Tensor h;
  if (from < 0) {
    h = m.Embed(at::tensor(ids, m.id_options()).view({n, longest}));  // [n, T, D]
  } else {
    // The prefixes' h_mid and a, right-padded; then layer `from`'s down-projection.
    const LlamaModel::Split& s0 = requests[run[0]].prefix.split;
    at::Tensor h_mid = at::zeros({n, longest, s0.h_mid.size(2)}, s0.h_mid.options());
    at::Tensor a = at::zeros({n, longest, s0.a.size(2)}, s0.a.options());
    for (int64_t j = 0; j < n; ++j) {
      const LlamaModel::Split& s = requests[run[j]].prefix.split;
      h_mid[j].narrow(0, 0, s.h_mid.size(1)).copy_(s.h_mid[0]);
      a[j].narrow(0, 0, s.a.size(1)).copy_(s.a[0]);
    }
    h = h_mid + DownProduct(m, a, from, overrides);
  }
  for (int64_t l = from + 1; l < m.config().num_hidden_layers; ++l) {
    at::Tensor h_mid = m.Attention(h, l, &cache, 0);
    h = h_mid + DownProduct(m, m.MlpInput(h_mid, l), l, overrides);
  }
  // Each row's last prompt position -> [n, 1, D] -> logits [n, V].
  at::Tensor at_last = at::tensor(last, m.id_options()).view({n, 1, 1}).expand({n, 1, h.size(2)});
  at::Tensor logits = m.Head(h.gather(1, at_last)).select(1, 0);
  const std::vector<int64_t> next = ChooseNext(logits, std::vector<int>(n, 0), m.utf8_barred_);
  for (int64_t j = 0; j < n; ++j) {
    DecodeRow& r = rows[run[j]];
    const int64_t length = last[j] + 1;
    const size_t layers = static_cast<size_t>(m.config().num_hidden_layers);
    r.cache.k.resize(layers);
    r.cache.v.resize(layers);
    for (size_t l = 0; l < layers; ++l) {
      if (static_cast<int64_t>(l) <= from) {  // the prefix's own, [1, KV, T_j, hd]
        r.cache.k[l] = requests[run[j]].prefix.cache.k[l];
        r.cache.v[l] = requests[run[j]].prefix.cache.v[l];
      } else {
        r.cache.k[l] = cache.k[l].narrow(0, j, 1).narrow(2, 0, length);  // [1, KV, T_j, hd]
        r.cache.v[l] = cache.v[l].narrow(0, j, 1).narrow(2, 0, length);
      }
    }
    r.cache.length = length;
    Accept(m, &r, next[j]);
  }
  return rows;
}

void BatchDecoder::Reserve(int64_t positions) {
  if (positions <= capacity_) return;
  const ModelConfig& c = model_.config();
  const int64_t cap = std::min<int64_t>(std::max<int64_t>(positions, 2 * capacity_), c.max_position_embeddings);
  const auto opts = at::TensorOptions().dtype(model_.dtype()).device(model_.device());
  at::Tensor grown = at::zeros({c.num_hidden_layers, 2, max_rows_, c.num_key_value_heads, cap, c.head_dim}, opts);
  if (kv_.defined()) grown.narrow(4, 0, capacity_).copy_(kv_);
  kv_ = grown;
  capacity_ = cap;
}

void BatchDecoder::Join(DecodeRow row, uint64_t tag) {
  TORCH_CHECK(static_cast<int>(rows_.size()) < max_rows_, "BatchDecoder::Join: the batch is full");
  TORCH_CHECK(!row.finished && row.cache.length > 0, "BatchDecoder::Join: the row is finished or was not started");
  at::InferenceMode guard;
  const int64_t length = row.cache.length;
  // Every later step feeds one token: the row never needs more than this many positions.
  Reserve(length + row.max_new_tokens - static_cast<int64_t>(row.generation.tokens.size()));
  const int64_t slot = static_cast<int64_t>(rows_.size());
  // Every layer's keys and values [L, 2, KV, T, hd] in one copy.
  at::Tensor k = at::cat(row.cache.k, 0), v = at::cat(row.cache.v, 0);  // [L, KV, T, hd]
  kv_.select(2, slot).narrow(3, 0, length).copy_(at::stack({k, v}, 1));
  row.cache = KvCache{};
  rows_.push_back(Slot{tag, std::move(row), length});
}

void BatchDecoder::Remove(size_t i) {
  const size_t last = rows_.size() - 1;
  if (i != last) {
    const int64_t n = rows_[last].length;
    kv_.select(2, static_cast<int64_t>(i)).narrow(3, 0, n).copy_(kv_.select(2, static_cast<int64_t>(last)).narrow(3, 0, n));
    rows_[i] = std::move(rows_[last]);
  }
  rows_.pop_back();
}

std::vector<uint64_t> BatchDecoder::Clear() {
  std::vector<uint64_t> tags;
  for (const Slot& s : rows_) tags.push_back(s.tag);
  rows_.clear();
  return tags;
}

at::Tensor BatchDecoder::DownProduct(const LlamaModel& m, const at::Tensor& a, int64_t l,
                                     const std::vector<const DownOverride*>& overrides) {
  const at::Tensor& base = m.layers_[l].down;
  // Rows by the weight they use, in order of first use.
  std::vector<const at::Tensor*> weights;
  std::vector<std::vector<int64_t>> members;
  for (size_t i = 0; i < overrides.size(); ++i) {
    const DownOverride* o = overrides[i];
    const at::Tensor* w = (o != nullptr && o->layer == l) ? &o->weight : &base;
    size_t g = 0;
    while (g < weights.size() && !weights[g]->is_same(*w)) ++g;
    if (g == weights.size()) {
      weights.push_back(w);
      members.emplace_back();
    }
    members[g].push_back(static_cast<int64_t>(i));
  }
  if (weights.size() == 1) return at::linear(a, weights[0]->to(a.scalar_type()));
  at::Tensor out = at::empty({a.size(0), a.size(1), base.size(0)}, a.options());  // [n, T, D]
  for (size_t g = 0; g < weights.size(); ++g) {
    at::Tensor idx = at::tensor(members[g], at::TensorOptions().dtype(at::kLong).device(a.device()));
    out.index_copy_(0, idx, at::linear(a.index_select(0, idx), weights[g]->to(a.scalar_type())));
  }
  return out;
}

std::vector<BatchDecoder::Event> BatchDecoder::Step() {
  std::vector<Event> events;
  if (rows_.empty()) return events;
  at::InferenceMode guard;
  const LlamaModel& m = model_;
  const ModelConfig& c = m.config();
  const int64_t n = static_cast<int64_t>(rows_.size());
  const int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, hd = c.head_dim;
  std::vector<int64_t> ids(n), positions(n);
  int64_t span = 0;  // positions the step reaches: the longest row's, with its new token
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = rows_[i].row.generation.tokens.back();
    positions[i] = rows_[i].length;
    span = std::max(span, rows_[i].length + 1);
  }
  TORCH_CHECK(span <= capacity_, "BatchDecoder::Step: a row outgrew its reserved positions");
  at::Tensor pos = at::tensor(positions, m.id_options());                 // [n]
  at::Tensor cos = m.rope_cos_.index_select(0, pos).view({n, 1, hd});    // [n, 1, hd]
  at::Tensor sin = m.rope_sin_.index_select(0, pos).view({n, 1, hd});
  // Where row i's new keys go in layer 0's key buffer seen as [max_rows * KV * capacity, hd]:
  // (i * KV + kv) * capacity + positions[i]; its values one buffer further, each later layer two further.
  const int64_t buffer = static_cast<int64_t>(max_rows_) * KV * capacity_;
  std::vector<int64_t> slots(static_cast<size_t>(n * KV));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t kv = 0; kv < KV; ++kv) slots[i * KV + kv] = (i * KV + kv) * capacity_ + positions[i];
  const at::Tensor at_slots = at::tensor(slots, m.id_options());
  const at::Tensor flat = kv_.view({-1, hd});
  std::vector<int64_t> lengths(positions);  // row i attends to its positions 0..positions[i]
  for (int64_t& x : lengths) ++x;
  at::Tensor masked;  // where the attention runs as products (not on the CPU): their mask, made once

  std::vector<const DownOverride*> overrides(n);
  for (int64_t i = 0; i < n; ++i) overrides[i] = rows_[i].row.override.get();
  at::Tensor h = m.Embed(at::tensor(ids, m.id_options()).view({n, 1}));  // [n, 1, D]
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LlamaModel::Layer& L = m.layers_[l];
    at::Tensor x = ops::RmsNorm(h, L.input_norm, c.rms_norm_eps);
    at::Tensor qkv = at::linear(x, L.wqkv).view({n, H + 2 * KV, hd});  // one token per row
    at::Tensor qk = ops::Rope(qkv.narrow(1, 0, H + KV), cos, sin);     // [n, H + KV, hd]
    at::Tensor q = qk.narrow(1, 0, H);                                  // [n, H, hd]
    // Row i's new key and value at its position.
    flat.index_copy_(0, at_slots + (2 * l) * buffer, qk.narrow(1, H, KV).reshape({n * KV, hd}));
    flat.index_copy_(0, at_slots + (2 * l + 1) * buffer, qkv.narrow(1, H + KV, KV).reshape({n * KV, hd}));
    at::Tensor layer = kv_.select(0, l);  // [2, max_rows, KV, capacity, hd]
    at::Tensor k = layer.select(0, 0), v = layer.select(0, 1);
    if (!masked.defined() && !ops::DecodeAttentionLoopFits(q, k, v)) masked = ops::DecodeMask(lengths, q.device());
    at::Tensor out = ops::DecodeAttention(q, k, v, lengths, masked).view({n, 1, H * hd});
    at::Tensor h_mid = h + at::linear(out, L.wo);
    h = h_mid + DownProduct(m, m.MlpInput(h_mid, l), l, overrides);
  }
  at::Tensor logits = m.Head(h).select(1, 0);  // [n, V]

  std::vector<int> pending(n);
  for (int64_t i = 0; i < n; ++i) pending[i] = rows_[i].row.pending;
  const std::vector<int64_t> next = ChooseNext(logits, pending, m.utf8_barred_);
  events.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    Slot& s = rows_[i];
    ++s.length;
    events[i].tag = s.tag;
    if (Accept(m, &s.row, next[i])) events[i].token = next[i];
    events[i].whole_characters = s.row.pending == 0;
    events[i].finished = s.row.finished;
    if (s.row.finished) events[i].generation = std::move(s.row.generation);
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    if (rows_[i].row.finished) Remove(static_cast<size_t>(i));
  }
  return events;
}

}  // namespace moke
