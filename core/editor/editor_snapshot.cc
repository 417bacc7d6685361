#include "core/editor/editor_snapshot.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/editor/activations.h"
#include "core/editor/fact_key.h"
#include "nlohmann/json.hpp"

namespace moke {

namespace {

SnapshotBlob F32Blob(const std::string& name, const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().cpu();
  return SnapshotBlob{name, "f32", c.sizes().vec(),
                      std::string(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * 4)};
}

SnapshotBlob BitsBlob(const std::string& name, const at::Tensor& bits, std::vector<int64_t> shape) {
  at::Tensor c = bits.contiguous().cpu();
  return SnapshotBlob{name, "bits", std::move(shape),
                      std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel())};
}

at::Tensor BlobTensor(const SnapshotBlob& b, c10::Device device) {
  at::Tensor t =
      at::from_blob(const_cast<char*>(b.bytes.data()), {static_cast<int64_t>(b.bytes.size())}, at::kByte).clone();
  if (b.kind == "bits") return t.to(device);  // packed, [ceil(n / 8)] uint8
  return t.view(at::kFloat).view(b.shape).to(device);
}

// Expert i: its mask ("mask.i", bits of [D, F]) and its values on the mask ("values.i", f32), or, in
// snapshots written before experts were stored on their masks, its dense tau ("tau.i", f32 [D, F]).
absl::StatusOr<MaskedTau> ExpertFromBlobs(const std::map<std::string, const SnapshotBlob*>& blobs, size_t i,
                                          const at::Tensor& w_org, c10::ScalarType dtype) {
  const int64_t d = w_org.size(0), f = w_org.size(1);
  const c10::Device dev = w_org.device();
  auto m = blobs.find(absl::StrCat("mask.", i));
  auto v = blobs.find(absl::StrCat("values.", i));
  auto t = blobs.find(absl::StrCat("tau.", i));
  if (m == blobs.end() || (v == blobs.end() && t == blobs.end())) {
    return absl::DataLossError(absl::StrCat("missing expert ", i));
  }
  if (m->second->kind != "bits" || m->second->shape != std::vector<int64_t>{d, f}) {
    return absl::DataLossError(absl::StrCat("expert ", i, " has the wrong shape"));
  }
  const at::Tensor bits = BlobTensor(*m->second, dev);
  if (v != blobs.end()) {
    if (v->second->kind != "f32" || v->second->shape.size() != 1) {
      return absl::DataLossError(absl::StrCat("expert ", i, ": bad values"));
    }
    auto e = MaskedTau::FromParts(bits, BlobTensor(*v->second, dev).to(dtype), d, f);
    if (!e.ok()) return absl::DataLossError(absl::StrCat("expert ", i, ": ", e.status().message()));
    return *e;
  }
  if (t->second->kind != "f32" || t->second->shape != std::vector<int64_t>{d, f}) {
    return absl::DataLossError(absl::StrCat("expert ", i, " has the wrong shape"));
  }
  return MaskedTau::FromDense(BlobTensor(*t->second, dev), UnpackMask(bits, d, f), dtype);
}

constexpr int kRouterTensors = 6;

}  // namespace

absl::StatusOr<SnapshotData> EncodeSnapshot(const EditorState& s) {
  SnapshotData data;
  nlohmann::json meta;
  const ExpertBank& bank = s.bank;
  MOKE_RETURN_IF_ERROR(GuardTorch("snapshot", [&] {
    meta["version"] = s.version;
    meta["method"] = EditMethodName(s.options.method);
    meta["num_experts"] = bank.size();
    meta["edit_layer"] = s.layer;
    meta["d_model"] = bank.w_org().size(0);
    meta["d_ff"] = bank.w_org().size(1);
    meta["seed"] = s.options.seed;
    std::ostringstream rng;
    rng << s.rng;
    meta["rng"] = rng.str();
    nlohmann::json md = nlohmann::json::array();
    for (double d : bank.min_delta()) md.push_back(std::isfinite(d) ? nlohmann::json(d) : nlohmann::json(nullptr));
    meta["min_delta"] = md;
    meta["router_step"] = s.router.defined() ? s.router.step() : 0;
    nlohmann::json hist = nlohmann::json::array();
    for (const auto& h : s.history) {
      hist.push_back({{"question", h.question}, {"answer", h.answer}, {"subject", h.subject},
                      {"paraphrases", h.paraphrases}, {"earlier_wordings", h.earlier_wordings},
                      {"expert", h.expert}, {"version", h.version}, {"superseded", h.superseded},
                      {"retracted", h.retracted}, {"delta", h.delta_trained}});
    }
    meta["history"] = hist;
    nlohmann::json rep = nlohmann::json::array();
    for (const auto& r : s.replay.entries()) rep.push_back({{"edit", r.edit}, {"expert", r.expert}});
    meta["replay"] = rep;
    meta["unrelated_pool"] = s.pool.supplied();
    meta["unrelated_next"] = s.pool.next_supplied();
    for (int i = 0; i < bank.size(); ++i) {
      const MaskedTau& e = bank.stored(i);
      data.blobs.push_back(F32Blob(absl::StrCat("values.", i), e.values()));
      data.blobs.push_back(BitsBlob(absl::StrCat("mask.", i), e.bits(), {e.rows(), e.cols()}));
    }
    if (s.router.defined()) {
      auto t = s.router.Tensors();
      for (size_t i = 0; i < t.size(); ++i) data.blobs.push_back(F32Blob(absl::StrCat("router.", i), t[i]));
    }
    return absl::OkStatus();
  }));
  data.meta_json = meta.dump();
  return data;
}

absl::StatusOr<uint64_t> SnapshotVersionOf(const SnapshotData& data, const std::string& origin) {
  auto meta = nlohmann::json::parse(data.meta_json, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("version") || !meta["version"].is_number_unsigned()) {
    return absl::DataLossError(absl::StrCat(origin, ": snapshot has no version"));
  }
  return meta["version"].get<uint64_t>();
}

absl::Status DecodeSnapshot(const SnapshotData& data, const std::string& origin, EditorState* state) {
  EditorState& s = *state;
  const EditorOptions& opt = s.options;
  const at::Tensor& w_org = s.bank.w_org();
  auto meta = nlohmann::json::parse(data.meta_json, nullptr, false);
  auto bad = [&](const std::string& why) { return absl::FailedPreconditionError(absl::StrCat(origin, ": ", why)); };
  auto lost = [&](const std::string& why) { return absl::DataLossError(absl::StrCat(origin, ": ", why)); };
  if (meta.is_discarded() || !meta.is_object()) return lost("bad metadata");
  try {
    if (meta.at("method").get<std::string>() != EditMethodName(opt.method)) {
      return bad(absl::StrCat("snapshot was made with method ", meta.at("method").get<std::string>()));
    }
    if (meta.at("edit_layer").get<int64_t>() != s.layer || meta.at("d_model").get<int64_t>() != w_org.size(0) ||
        meta.at("d_ff").get<int64_t>() != w_org.size(1)) {
      return bad("snapshot was made for another model shape or edit layer");
    }
    std::map<std::string, const SnapshotBlob*> blobs;
    for (const auto& b : data.blobs) blobs[b.name] = &b;
    const size_t k = meta.at("num_experts").get<size_t>();
    if (opt.method == EditMethod::kMoke &&
        (k < static_cast<size_t>(opt.num_experts) || k > static_cast<size_t>(opt.max_experts) ||
         (opt.expert_capacity == 0 && k != static_cast<size_t>(opt.num_experts)))) {
      return bad(absl::StrCat("snapshot has ", k, " experts; this configuration allows ", opt.num_experts,
                              opt.expert_capacity > 0 ? absl::StrCat("..", opt.max_experts) : std::string()));
    }
    const c10::Device dev = w_org.device();
    std::vector<MaskedTau> taus;
    std::vector<HeldEdit> history;
    std::vector<at::Tensor> activations;  // per history entry, kept only for the replay buffer
    UnrelatedPool pool = s.pool;
    Router router;
    MOKE_RETURN_IF_ERROR(GuardTorch("restore", [&]() -> absl::Status {
      for (size_t i = 0; i < k; ++i) {
        auto e = ExpertFromBlobs(blobs, i, w_org, s.bank.dtype());
        if (!e.ok()) return lost(std::string(e.status().message()));
        taus.push_back(*std::move(e));
      }
      if (opt.method == EditMethod::kMoke) {
        std::vector<at::Tensor> rt;
        for (int i = 0; i < kRouterTensors; ++i) {
          auto it = blobs.find(absl::StrCat("router.", i));
          if (it == blobs.end()) return lost("missing router");
          rt.push_back(BlobTensor(*it->second, dev));
        }
        if (rt[0].dim() != 2 || rt[0].size(0) != static_cast<int64_t>(k) || rt[0].size(1) != w_org.size(1)) {
          return lost("router does not match the experts");
        }
        router.SetTensors(rt, meta.at("router_step").get<int64_t>());
      }
      pool.RestoreSupplied(meta.at("unrelated_pool").get<std::vector<std::string>>(),
                           meta.at("unrelated_next").get<size_t>());
      for (const auto& h : meta.at("history")) {
        HeldEdit e;
        e.question = h.at("question").get<std::string>();
        e.answer = h.at("answer").get<std::string>();
        e.answer_tokens = static_cast<int64_t>(s.model->EncodeContinuation(e.answer).size());
        e.expert = h.at("expert").get<int>();
        e.version = h.at("version").get<uint64_t>();
        e.superseded = h.at("superseded").get<bool>();
        e.retracted = h.value("retracted", false);
        e.delta_trained = h.at("delta").get<double>();
        if (e.expert < 0 || static_cast<size_t>(e.expert) >= k) return lost("history names an expert that does not exist");
        e.subject = h.value("subject", std::string());
        e.paraphrases = h.value("paraphrases", std::vector<std::string>());
        e.earlier_wordings = h.value("earlier_wordings", std::vector<std::string>());
        if (e.earlier_wordings.size() > kMaxEarlierWordings) return lost("history has too many earlier wordings");
        at::Tensor a = ActivationsOf(*s.model, s.layer, e.question).a;
        e.fingerprint = Fingerprint(a);
        e.key = BuildFactKey(*s.model, s.layer, FactSourceOf(e), a, ScopeThresholdsOf(opt));
        activations.push_back(std::move(a));
        history.push_back(std::move(e));
      }
      return absl::OkStatus();
    }));
    std::vector<ReplayBuffer::Entry> replay;
    for (const auto& r : meta.at("replay")) {
      const size_t e = r.at("edit").get<size_t>();
      if (e >= history.size()) return lost("replay entry out of range");
      replay.push_back({e, r.at("expert").get<int>(), activations[e]});
    }
    std::vector<double> min_delta;
    for (const auto& d : meta.at("min_delta")) {
      min_delta.push_back(d.is_null() ? std::numeric_limits<double>::infinity() : d.get<double>());
    }
    if (min_delta.size() != k) return lost("thresholds do not match experts");
    std::mt19937_64 rng;
    std::istringstream(meta.at("rng").get<std::string>()) >> rng;
    const uint64_t version = meta.at("version").get<uint64_t>();
    // Swap in everything at once.
    s.bank.Restore(std::move(taus), std::move(min_delta));
    s.history = std::move(history);
    s.replay.Restore(std::move(replay));
    if (opt.method == EditMethod::kMoke) s.router = std::move(router);
    s.rng = rng;
    s.version = version;
    s.pool = std::move(pool);
  } catch (const nlohmann::json::exception& e) {
    return lost(absl::StrCat("bad metadata: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace moke
