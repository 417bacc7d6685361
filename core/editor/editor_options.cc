#include "core/editor/editor_options.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moke {

const char* EditMethodName(EditMethod m) { return m == EditMethod::kMoke ? "moke" : "wise"; }

const char* RoutingName(Routing r) {
  switch (r) {
    case Routing::kRouter: return "router";
    case Routing::kActivation: return "activation";
    case Routing::kActivationRouter: return "activation+router";
  }
  return "?";
}

absl::Status ParseEditMethod(const std::string& s, EditMethod* out) {
  if (s == "moke") *out = EditMethod::kMoke;
  else if (s == "wise") *out = EditMethod::kWise;
  else return absl::InvalidArgumentError(absl::StrCat("method: \"", s, "\" is not one of moke, wise"));
  return absl::OkStatus();
}

absl::Status ParseRouting(const std::string& s, Routing* out) {
  if (s == "router") *out = Routing::kRouter;
  else if (s == "activation" || s == "act") *out = Routing::kActivation;
  else if (s == "activation+router" || s == "act+router") *out = Routing::kActivationRouter;
  else return absl::InvalidArgumentError(absl::StrCat("routing: \"", s, "\" is not one of router, activation, activation+router"));
  return absl::OkStatus();
}

const char* ScopeGateName(ScopeGate g) { return g == ScopeGate::kThreshold ? "threshold" : "nearest"; }

absl::Status ParseScopeGate(const std::string& s, ScopeGate* out) {
  if (s == "threshold") *out = ScopeGate::kThreshold;
  else if (s == "nearest") *out = ScopeGate::kNearest;
  else return absl::InvalidArgumentError(absl::StrCat("scope_gate: \"", s, "\" is not one of threshold, nearest"));
  return absl::OkStatus();
}

absl::Status ApplyProfile(const std::string& profile, EditorOptions* o) {
  if (profile == "paper") {
    o->retention = 0;
    o->expert_capacity = 0;
    o->scope_gate = ScopeGate::kThreshold;
    o->margin_loss = true;
    o->memory_loss = true;
  } else if (profile == "moke+") {
    const EditorOptions d;
    o->retention = d.retention;
    o->expert_capacity = d.expert_capacity;
    o->scope_gate = d.scope_gate;
    o->margin_loss = d.margin_loss;
    o->memory_loss = d.memory_loss;
    o->nearest_min_cosine = d.nearest_min_cosine;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("setting \"profile\": \"", profile, "\" is not one of paper, moke+"));
  }
  return absl::OkStatus();
}

absl::Status LoadEditorOptions(const std::string& path, EditorOptions* o) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  if (auto p = j.find("profile"); p != j.end()) {
    if (!p->is_string()) return absl::InvalidArgumentError(absl::StrCat(path, ": setting \"profile\" must be a string"));
    if (auto s = ApplyProfile(p->get<std::string>(), o); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    auto bad = [&](const char* want) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": setting \"", k, "\" must be ", want));
    };
    auto num = [&](double* out) -> absl::Status {
      if (!v.is_number()) return bad("a number");
      *out = v.get<double>();
      return absl::OkStatus();
    };
    auto integer = [&](auto* out) -> absl::Status {
      if (!v.is_number_integer()) return bad("an integer");
      *out = v.get<std::remove_pointer_t<decltype(out)>>();
      return absl::OkStatus();
    };
    auto boolean = [&](bool* out) -> absl::Status {
      if (!v.is_boolean()) return bad("true or false");
      *out = v.get<bool>();
      return absl::OkStatus();
    };
    auto str = [&](std::string* out) -> absl::Status {
      if (!v.is_string()) return bad("a string");
      *out = v.get<std::string>();
      return absl::OkStatus();
    };
    absl::Status s;
    if (k == "profile") continue;  // applied above
    if (k == "model_dir") s = str(&o->model_dir);
    else if (k == "device") s = str(&o->device);
    else if (k == "dtype") s = str(&o->dtype);
    else if (k == "threads") s = integer(&o->threads);
    else if (k == "method") {
      std::string m;
      s = str(&m);
      if (s.ok()) s = ParseEditMethod(m, &o->method);
    } else if (k == "edit_layer") s = integer(&o->edit_layer);
    else if (k == "num_experts") s = integer(&o->num_experts);
    else if (k == "mask_ratio") s = num(&o->mask_ratio);
    else if (k == "disjoint_masks") s = boolean(&o->disjoint_masks);
    else if (k == "select_eps") s = num(&o->select_eps);
    else if (k == "activation_selection") s = boolean(&o->activation_selection);
    else if (k == "lr") s = num(&o->lr);
    else if (k == "max_iterations") s = integer(&o->max_iterations);
    else if (k == "clamp") s = num(&o->clamp);
    else if (k == "stop_loss") s = num(&o->stop_loss);
    else if (k == "stop_delta") s = num(&o->stop_delta);
    else if (k == "alpha") s = num(&o->alpha);
    else if (k == "beta") s = num(&o->beta);
    else if (k == "gamma") s = num(&o->gamma);
    else if (k == "margin_loss") s = boolean(&o->margin_loss);
    else if (k == "memory_loss") s = boolean(&o->memory_loss);
    else if (k == "replay_capacity") s = integer(&o->replay_capacity);
    else if (k == "augment") s = boolean(&o->augment);
    else if (k == "num_prefixes") s = integer(&o->num_prefixes);
    else if (k == "routing") {
      std::string r;
      s = str(&r);
      if (s.ok()) s = ParseRouting(r, &o->routing);
    } else if (k == "router_weight") s = num(&o->router_weight);
    else if (k == "threshold_factor") s = num(&o->threshold_factor);
    else if (k == "router_steps") s = integer(&o->router_steps);
    else if (k == "router_lr") s = num(&o->router_lr);
    else if (k == "use_emr") s = boolean(&o->use_emr);
    else if (k == "wise_mask_ratio") s = num(&o->wise_mask_ratio);
    else if (k == "wise_save_freq") s = integer(&o->wise_save_freq);
    else if (k == "frozen_prefix") s = boolean(&o->frozen_prefix);
    else if (k == "max_answer_tokens") s = integer(&o->max_answer_tokens);
    else if (k == "max_new_tokens") s = integer(&o->max_new_tokens);
    else if (k == "seed") s = integer(&o->seed);
    else if (k == "retention") s = integer(&o->retention);
    else if (k == "nearest_min_cosine") s = num(&o->nearest_min_cosine);
    else if (k == "expert_capacity") s = integer(&o->expert_capacity);
    else if (k == "max_experts") s = integer(&o->max_experts);
    else if (k == "scope_gate") {
      std::string g;
      s = str(&g);
      if (s.ok()) s = ParseScopeGate(g, &o->scope_gate);
    } else return absl::InvalidArgumentError(absl::StrCat(path, ": unknown setting \"", k, "\""));
    if (!s.ok()) return s;
  }
  return ValidateEditorOptions(*o);
}

absl::Status ValidateEditorOptions(const EditorOptions& o) {
  auto bad = [](const char* name, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("setting \"", name, "\" ", why));
  };
  if (o.num_experts < 1 || o.num_experts > 64) return bad("num_experts", "must be in 1..64");
  if (!(o.mask_ratio > 0 && o.mask_ratio <= 1)) return bad("mask_ratio", "must be in (0, 1]");
  if (o.disjoint_masks && o.mask_ratio * o.num_experts > 1.0 + 1e-9)
    return bad("mask_ratio", "x num_experts must be <= 1 with disjoint_masks");
  if (!(o.wise_mask_ratio > 0 && o.wise_mask_ratio <= 1)) return bad("wise_mask_ratio", "must be in (0, 1]");
  if (!(o.lr > 0)) return bad("lr", "must be positive");
  if (o.max_iterations < 1 || o.max_iterations > 10000) return bad("max_iterations", "must be in 1..10000");
  if (!(o.clamp > 0)) return bad("clamp", "must be positive");
  if (o.replay_capacity < 0) return bad("replay_capacity", "must be >= 0");
  if (o.num_prefixes < 0 || o.num_prefixes > 10) return bad("num_prefixes", "must be in 0..10");
  if (!(o.threshold_factor > 0)) return bad("threshold_factor", "must be positive");
  if (o.router_weight < 0 || o.router_weight > 1) return bad("router_weight", "must be in [0, 1]");
  if (o.router_steps < 0) return bad("router_steps", "must be >= 0");
  if (o.wise_save_freq < 1) return bad("wise_save_freq", "must be >= 1");
  if (o.max_answer_tokens < 1) return bad("max_answer_tokens", "must be >= 1");
  if (o.max_new_tokens < 1) return bad("max_new_tokens", "must be >= 1");
  if (o.threads < 0) return bad("threads", "must be >= 0");
  if (o.retention < 0) return bad("retention", "must be >= 0");
  if (o.nearest_min_cosine < 0 || o.nearest_min_cosine > 1) return bad("nearest_min_cosine", "must be in [0, 1]");
  if (o.expert_capacity < 0) return bad("expert_capacity", "must be >= 0");
  if (o.max_experts < o.num_experts || o.max_experts > 4096) return bad("max_experts", "must be in num_experts..4096");
  return absl::OkStatus();
}

}  // namespace moke
