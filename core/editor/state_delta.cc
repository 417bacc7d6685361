#include "core/editor/state_delta.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/editor/expert_bank.h"
#include "core/editor/fact_key.h"
#include "core/editor/knowledge_state.h"
#include "core/editor/state_delta_codec.h"
#include "core/storage/crc32c.h"
#include "nlohmann/json.hpp"

namespace moke {

namespace {

// More experts than this in a delta is corruption (the settings cap growth at max_experts <= this).
constexpr uint32_t kMaxExperts = 1 << 16;
// Settings that are the follower's own: where its model is and how it runs it.
const std::set<std::string>& LocalSettings() {
  static const auto* const s = new std::set<std::string>{"model_dir", "device", "dtype", "threads"};
  return *s;
}

absl::StatusOr<uint8_t> WireDtypeOf(c10::ScalarType t) {
  switch (t) {
    case at::kFloat: return static_cast<uint8_t>(WireDtype::kF32);
    case at::kBFloat16: return static_cast<uint8_t>(WireDtype::kBF16);
    case at::kHalf: return static_cast<uint8_t>(WireDtype::kF16);
    case at::kByte: return static_cast<uint8_t>(WireDtype::kU8);
    default: return absl::InternalError(absl::StrCat("state delta: no wire form for dtype ", c10::toString(t)));
  }
}

c10::ScalarType TorchDtypeOf(uint8_t d) {
  switch (static_cast<WireDtype>(d)) {
    case WireDtype::kF32: return at::kFloat;
    case WireDtype::kBF16: return at::kBFloat16;
    case WireDtype::kF16: return at::kHalf;
    case WireDtype::kU8: return at::kByte;
  }
  return at::kFloat;  // DecodeStateDelta refuses unknown codes
}

absl::StatusOr<WireTensor> ToWire(const at::Tensor& t) {
  WireTensor w;
  MOKE_ASSIGN_OR_RETURN(w.dtype, WireDtypeOf(t.scalar_type()));
  const at::Tensor c = t.contiguous().cpu();
  w.shape = c.sizes().vec();
  w.bytes.assign(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return w;
}

at::Tensor FromWire(const WireTensor& w, c10::Device device) {
  if (w.bytes.empty()) return at::empty(w.shape, at::TensorOptions().dtype(TorchDtypeOf(w.dtype))).to(device);
  return at::from_blob(const_cast<char*>(w.bytes.data()), w.shape, at::TensorOptions().dtype(TorchDtypeOf(w.dtype)))
      .clone()
      .to(device);
}

WireModelIdentity IdentityOf(const KnowledgeState::Parts& p) {
  WireModelIdentity id;
  id.d_model = p.w_org.size(0);
  id.d_ff = p.w_org.size(1);
  id.layer = p.layer;
  id.num_layers = p.model->config().num_hidden_layers;
  id.vocab = p.model->config().vocab_size;
  id.dtype = WireDtypeOf(p.model->dtype()).value_or(255);
  const at::Tensor w = p.w_org.to(at::kFloat).contiguous().cpu();
  id.w_org_crc = storage::Crc32cExtend(0, w.data_ptr(), w.nbytes());
  return id;
}

// The settings that decide answers, as the config file spells them.
std::string OptionsJson(const EditorOptions& o) {
  nlohmann::json j = nlohmann::json::object();
  for (const EditorSetting& s : EditorSettings()) {
    if (LocalSettings().count(s.name)) continue;
    j[s.name] = nlohmann::json::parse(s.ValueJson(o));
  }
  return j.dump();
}

// A changed expert is a new MaskedTau with new values (masked_tau.h); experts of a group share one code.
bool SameTau(const MaskedTau& a, const MaskedTau& b) {
  return a.values().is_same(b.values()) && a.code().SameStorage(b.code()) && a.slot() == b.slot();
}

absl::StatusOr<WireFact> FactToWire(const KnowledgeState::Parts& p, size_t i) {
  const FactKey& k = *p.facts[i];
  WireFact f;
  f.version = p.fact_version[i];
  f.expert = p.fact_expert[i];
  f.answer_tokens = p.fact_answer_tokens[i];
  f.question = k.question;
  f.subject = k.subject;
  f.names = k.names;
  f.name_trigrams = k.name_trigrams;
  for (const RelationKey& r : k.relations) {
    WireRelation w;
    w.words = r.words;
    MOKE_ASSIGN_OR_RETURN(w.key, ToWire(r.key));
    f.relations.push_back(std::move(w));
  }
  f.question_trigrams = k.question_trigrams;
  return f;
}

// A fact is the same in two states when it is the same key object at the same version with the same expert.
struct FactId {
  uint64_t version;
  const FactKey* key;
  int expert;
  auto operator<=>(const FactId&) const = default;
};
std::set<FactId> FactIds(const KnowledgeState::Parts& p) {
  std::set<FactId> ids;
  for (size_t i = 0; i < p.facts.size(); ++i) ids.insert({p.fact_version[i], p.facts[i].get(), p.fact_expert[i]});
  return ids;
}

absl::StatusOr<StateDelta> Diff(const KnowledgeState* from, const KnowledgeState& to) {
  const KnowledgeState::Parts& t = to.parts();
  StateDelta d;
  d.full = from == nullptr;
  d.from_version = from ? from->version() : 0;
  d.version = t.version;
  if (d.full) {
    d.model = IdentityOf(t);
    d.options_json = OptionsJson(t.options);
  }
  const std::vector<MaskedTau>& taus = t.experts.taus;
  d.num_experts = static_cast<uint32_t>(taus.size());
  for (size_t k = 0; k < taus.size(); ++k) {
    if (from && k < from->parts().experts.taus.size() && SameTau(from->parts().experts.taus[k], taus[k])) continue;
    if (!taus[k].defined()) return absl::InternalError(absl::StrCat("state delta: expert ", k, " is not defined"));
    WireExpert e;
    e.index = static_cast<uint32_t>(k);
    MOKE_ASSIGN_OR_RETURN(e.bits, ToWire(taus[k].bits()));
    MOKE_ASSIGN_OR_RETURN(e.values, ToWire(taus[k].values()));
    d.experts.push_back(std::move(e));
  }
  d.thresholds = t.thresholds;
  d.has_router = t.router_w.defined();
  if (d.has_router) {
    MOKE_ASSIGN_OR_RETURN(d.router_w, ToWire(t.router_w.to(at::kFloat)));
    MOKE_ASSIGN_OR_RETURN(d.router_b, ToWire(t.router_b.to(at::kFloat)));
  }
  const std::set<FactId> now = FactIds(t);
  const std::set<FactId> before = from ? FactIds(from->parts()) : std::set<FactId>();
  for (const FactId& f : before) {
    if (!now.count(f)) d.removed_facts.push_back(f.version);
  }
  for (size_t i = 0; i < t.facts.size(); ++i) {
    if (before.count({t.fact_version[i], t.facts[i].get(), t.fact_expert[i]})) continue;
    MOKE_ASSIGN_OR_RETURN(WireFact f, FactToWire(t, i));
    d.added_facts.push_back(std::move(f));
  }
  return d;
}

absl::Status CheckTensor(const WireTensor& w, uint8_t dtype, const std::vector<int64_t>& shape, const std::string& what) {
  if (w.dtype != dtype || w.shape != shape) {
    return absl::DataLossError(absl::StrCat("state delta: ", what, " has the wrong type or shape"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const KnowledgeState>> Apply(const KnowledgeState& prev, const StateDelta& d) {
  const KnowledgeState::Parts& p = prev.parts();
  auto lost = [](const std::string& why) { return absl::DataLossError(absl::StrCat("state delta: ", why)); };
  KnowledgeState::Parts n;
  n.model = p.model;
  n.layer = p.layer;
  n.w_org = p.w_org;
  n.options = p.options;
  const int64_t rows = p.w_org.size(0), cols = p.w_org.size(1);
  const c10::Device dev = p.w_org.device();
  MOKE_ASSIGN_OR_RETURN(const uint8_t model_dtype, WireDtypeOf(p.model->dtype()));
  if (d.full) {
    const WireModelIdentity mine = IdentityOf(p);
    if (!(d.model == mine)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the editor serves another model: its edit layer ", d.model.layer, " of ", d.model.num_layers, " is [",
          d.model.d_model, ", ", d.model.d_ff, "] (vocabulary ", d.model.vocab, ", weights crc ", d.model.w_org_crc,
          "); here layer ", mine.layer, " of ", mine.num_layers, " is [", mine.d_model, ", ", mine.d_ff,
          "] (vocabulary ", mine.vocab, ", weights crc ", mine.w_org_crc, "), or the dtypes differ"));
    }
    if (absl::Status s = ParseEditorOptions(d.options_json, &n.options); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("the editor's settings do not apply here: ", s.message()));
    }
  } else {
    if (d.from_version != p.version) {
      return absl::FailedPreconditionError(
          absl::StrCat("state delta from version ", d.from_version, " does not apply to version ", p.version));
    }
    n.experts = p.experts;
    n.facts = p.facts;
    n.fact_expert = p.fact_expert;
    n.fact_version = p.fact_version;
    n.fact_answer_tokens = p.fact_answer_tokens;
  }
  n.version = d.version;
  const uint32_t k = d.num_experts;
  if (k > kMaxExperts) return lost(absl::StrCat(k, " experts"));
  n.experts.taus.resize(k);
  std::vector<bool> sent(k, false);
  for (const WireExpert& e : d.experts) {
    if (e.index >= k || sent[e.index]) return lost(absl::StrCat("expert index ", e.index, " of ", k));
    sent[e.index] = true;
    MOKE_RETURN_IF_ERROR(CheckTensor(e.bits, static_cast<uint8_t>(WireDtype::kU8), {(rows * cols + 7) / 8},
                                     absl::StrCat("expert ", e.index, " mask")));
    if (e.values.dtype != model_dtype || e.values.shape.size() != 1) {
      return lost(absl::StrCat("expert ", e.index, " values have the wrong type or shape"));
    }
    auto tau = MaskedTau::FromParts(FromWire(e.bits, dev), FromWire(e.values, dev), rows, cols);
    if (!tau.ok()) return lost(absl::StrCat("expert ", e.index, ": ", tau.status().message()));
    n.experts.taus[e.index] = *std::move(tau);
  }
  for (uint32_t i = 0; i < k; ++i) {
    if (!n.experts.taus[i].defined()) return lost(absl::StrCat("expert ", i, " is missing"));
  }
  // The wire carries each expert's own mask; the experts of a MoKE group with disjoint masks share one
  // code again, as on the editor (expert_bank.h), for the groups this delta touched.
  if (n.options.method == EditMethod::kMoke && n.options.disjoint_masks && !d.experts.empty()) {
    const int g = n.options.num_experts;
    std::set<uint32_t> groups;
    for (const WireExpert& e : d.experts) groups.insert(e.index / static_cast<uint32_t>(g));
    for (uint32_t group : groups) {
      const int first = static_cast<int>(group) * g;
      ShareGroupCode(&n.experts.taus, first, std::min<int>(g, static_cast<int>(k) - first));
    }
  }
  if (d.thresholds.size() != k) return lost(absl::StrCat(d.thresholds.size(), " thresholds for ", k, " experts"));
  n.thresholds = d.thresholds;
  if (d.has_router) {
    const auto f32 = static_cast<uint8_t>(WireDtype::kF32);
    MOKE_RETURN_IF_ERROR(CheckTensor(d.router_w, f32, {static_cast<int64_t>(k), cols}, "router_w"));
    MOKE_RETURN_IF_ERROR(CheckTensor(d.router_b, f32, {static_cast<int64_t>(k)}, "router_b"));
    n.router_w = FromWire(d.router_w, dev);
    n.router_b = FromWire(d.router_b, dev);
  }
  // Facts: the removed ones out (by version), the added ones in, ascending version.
  struct Fact {
    std::shared_ptr<const FactKey> key;
    int expert;
    uint64_t version;
    int64_t answer_tokens;
  };
  std::map<uint64_t, Fact> facts;
  for (size_t i = 0; i < n.facts.size(); ++i) {
    facts[n.fact_version[i]] = {n.facts[i], n.fact_expert[i], n.fact_version[i], n.fact_answer_tokens[i]};
  }
  for (uint64_t v : d.removed_facts) {
    if (facts.erase(v) != 1) return lost(absl::StrCat("removes fact of version ", v, ", which is not held"));
  }
  for (const WireFact& w : d.added_facts) {
    if (w.expert < 0 || static_cast<uint32_t>(w.expert) >= k) return lost(absl::StrCat("fact names expert ", w.expert));
    if (w.answer_tokens < 0) return lost("negative answer length");
    if (facts.count(w.version)) return lost(absl::StrCat("fact of version ", w.version, " twice"));
    auto key = std::make_shared<FactKey>();
    key->question = w.question;
    key->subject = w.subject;
    key->names = w.names;
    key->name_trigrams = w.name_trigrams;
    key->question_trigrams = w.question_trigrams;
    for (const WireRelation& r : w.relations) {
      if (r.key.shape != std::vector<int64_t>{cols} || r.key.dtype == static_cast<uint8_t>(WireDtype::kU8)) {
        return lost(absl::StrCat("fact of version ", w.version, ": relation key has the wrong type or shape"));
      }
      key->relations.push_back({r.words, FromWire(r.key, dev)});
    }
    facts[w.version] = {std::move(key), w.expert, w.version, w.answer_tokens};
  }
  n.facts.clear();
  n.fact_expert.clear();
  n.fact_version.clear();
  n.fact_answer_tokens.clear();
  for (auto& [v, f] : facts) {
    n.facts.push_back(std::move(f.key));
    n.fact_expert.push_back(f.expert);
    n.fact_version.push_back(v);
    n.fact_answer_tokens.push_back(f.answer_tokens);
  }
  n.scope = ScopeThresholdsOf(n.options);
  return std::make_shared<const KnowledgeState>(std::move(n));
}

}  // namespace

absl::StatusOr<std::string> DiffStates(const KnowledgeView* from, const KnowledgeView& to) {
  std::string out;
  MOKE_RETURN_IF_ERROR(GuardTorch("state delta", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    MOKE_ASSIGN_OR_RETURN(StateDelta d, Diff(from ? &from->state() : nullptr, to.state()));
    out = EncodeStateDelta(d);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::shared_ptr<const KnowledgeView>> ApplyStateDelta(const KnowledgeView& prev, std::string_view bytes) {
  MOKE_ASSIGN_OR_RETURN(StateDelta d, DecodeStateDelta(bytes));
  std::shared_ptr<const KnowledgeState> next;
  MOKE_RETURN_IF_ERROR(GuardTorch("apply state delta", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    MOKE_ASSIGN_OR_RETURN(next, Apply(prev.state(), d));
    return absl::OkStatus();
  }));
  return std::make_shared<const KnowledgeView>(std::move(next));
}

}  // namespace moke
