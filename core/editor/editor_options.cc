#include "core/editor/editor_options.h"

#include <algorithm>
#include <fstream>
#include <span>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"

namespace moke {
namespace {

using nlohmann::json;

// ---- Names of the enums: the first name of a value is its own, later ones are accepted aliases ----

template <typename E>
struct EnumName {
  const char* name;
  E value;
};

constexpr EnumName<EditMethod> kMethodNames[] = {{"moke", EditMethod::kMoke}, {"wise", EditMethod::kWise}};
constexpr EnumName<Routing> kRoutingNames[] = {{"router", Routing::kRouter},
                                               {"activation", Routing::kActivation},
                                               {"activation+router", Routing::kActivationRouter},
                                               {"act", Routing::kActivation},
                                               {"act+router", Routing::kActivationRouter}};
constexpr EnumName<ScopeGate> kScopeGateNames[] = {{"threshold", ScopeGate::kThreshold},
                                                   {"fact", ScopeGate::kFact}};

std::span<const EnumName<EditMethod>> NamesOf(EditMethod) { return kMethodNames; }
std::span<const EnumName<Routing>> NamesOf(Routing) { return kRoutingNames; }
std::span<const EnumName<ScopeGate>> NamesOf(ScopeGate) { return kScopeGateNames; }

template <typename E>
const char* NameOf(E v) {
  for (const auto& n : NamesOf(v)) {
    if (n.value == v) return n.name;
  }
  return "?";
}

template <typename E>
std::vector<std::string> OwnNames() {
  std::vector<std::string> out;
  std::vector<E> seen;
  for (const auto& n : NamesOf(E{})) {
    if (std::find(seen.begin(), seen.end(), n.value) != seen.end()) continue;
    seen.push_back(n.value);
    out.push_back(n.name);
  }
  return out;
}

template <typename E>
absl::Status ParseEnum(const char* key, const std::string& s, E* out) {
  for (const auto& n : NamesOf(E{})) {
    if (s == n.name) {
      *out = n.value;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("setting \"", key, "\": \"", s, "\" is not one of ", absl::StrJoin(OwnNames<E>(), ", ")));
}

template <typename T>
constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// ---- The table ----

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr SettingRange kAny{};
constexpr SettingRange AtLeast(double lo) { return {lo, kInf, false, false}; }
constexpr SettingRange Above(double lo) { return {lo, kInf, true, false}; }
constexpr SettingRange Between(double lo, double hi) { return {lo, hi, false, false}; }
constexpr SettingRange AboveUpTo(double lo, double hi) { return {lo, hi, true, false}; }  // (lo, hi]

// The JSON key is the field's name, spelled once.
#define MOKE_SETTING(field) #field, &EditorOptions::field

const std::vector<EditorSetting>& Table() {
  static const auto* const table = new std::vector<EditorSetting>{
      // Model.
      {MOKE_SETTING(model_dir), kAny, nullptr,
       "Model folder (config.json, safetensors, tokenizer.model); --model overrides; empty: the server's default"},
      {MOKE_SETTING(device), kAny, nullptr, "cpu or cuda[:N]; --device overrides"},
      {MOKE_SETTING(dtype), kAny, nullptr,
       "Weights in memory: auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16 or float16 (checked at load)"},
      {MOKE_SETTING(threads), AtLeast(0), nullptr, "Compute threads; 0: 1 for small models, else the CPUs the process may use (affinity, cgroup)"},
      // Method.
      {MOKE_SETTING(method), kAny, nullptr, "Editing method: MoKE (this service) or WISE (the baseline)"},
      {MOKE_SETTING(edit_layer), AtLeast(-1), nullptr,
       "Layer whose MLP down-projection the experts edit (0-based); -1: round(0.8 x layers) - 1"},
      {MOKE_SETTING(num_experts), Between(1, 64), nullptr, "Experts in the initial bank (K); growth adds groups of K"},
      {MOKE_SETTING(mask_ratio), AboveUpTo(0, 1), nullptr, "Share of the down-projection each expert may change"},
      {MOKE_SETTING(disjoint_masks), kAny, nullptr, "The masks of one group of experts do not overlap"},
      {MOKE_SETTING(select_eps), kAny, nullptr,
       "Eq. 3: an edit goes to the best-scoring expert when its score is above this, else to a random one"},
      {MOKE_SETTING(activation_selection), kAny, nullptr,
       "Choose the expert by activation scores (Eq. 3); false: every edit goes to a random expert (ablation)"},
      {MOKE_SETTING(lr), Above(0), "0.1", "SGD step size on the expert (0.5: tuned on ZsRE, docs/benchmarks.md)"},
      {MOKE_SETTING(max_iterations), Between(1, 10000), nullptr, "Training steps per edit, at most"},
      {MOKE_SETTING(clamp), Above(0), nullptr, "Largest change of one weight: |W_i - W_org| <= clamp"},
      {MOKE_SETTING(stop_loss), AtLeast(0), nullptr, "Stop training an edit once the loss is <= this ..."},
      {MOKE_SETTING(stop_delta), AtLeast(0), nullptr, "... and it moved by <= this in the last step"},
      {MOKE_SETTING(alpha), AtLeast(0), nullptr, "Eq. 5 margin: Delta on unrelated input is pushed below alpha"},
      {MOKE_SETTING(beta), AtLeast(0), nullptr, "Eq. 5 margin: Delta on the edit is pushed above beta"},
      {MOKE_SETTING(gamma), AtLeast(0), nullptr,
       "Eq. 5-6 margin between Delta on the edit and on other input (or another expert's Delta)"},
      {MOKE_SETTING(margin_loss), kAny, "true", "Train with the margin loss (Eq. 5)"},
      {MOKE_SETTING(memory_loss), kAny, "true", "Train with the memory loss on replayed earlier edits (Eq. 6)"},
      {MOKE_SETTING(replay_capacity), AtLeast(0), nullptr, "Earlier edits kept for the memory loss"},
      {MOKE_SETTING(augment), kAny, nullptr, "Train on self-generated prefixes and subject noise too"},
      {MOKE_SETTING(num_prefixes), Between(0, 10), nullptr, "Self-generated prefixes per edit (with augment)"},
      // Answering.
      {MOKE_SETTING(routing), kAny, nullptr, "Which expert answers an in-scope prompt under the threshold gate"},
      {MOKE_SETTING(router_weight), Between(0, 1), nullptr,
       "Weight of the router's probabilities in activation+router routing"},
      {MOKE_SETTING(threshold_factor), Above(0), nullptr,
       "Threshold gate: an expert's threshold is this x the least in-scope Delta seen in its training"},
      {MOKE_SETTING(router_steps), AtLeast(0), nullptr, "Router (Eq. 7) training steps per edit; 0: no router"},
      {MOKE_SETTING(router_lr), Above(0), nullptr, "Router learning rate (Adam)"},
      {MOKE_SETTING(use_emr), kAny, nullptr, "EMR-merge each group for serving when masks overlap (with disjoint masks the merge is exact: the experts themselves)"},
      {MOKE_SETTING(retention), AtLeast(0), "0",
       "Earlier live edits of the chosen expert rehearsed with each new edit (bounded)"},
      {MOKE_SETTING(scope_gate), kAny, "\"threshold\"",
       "Is a prompt edited knowledge? fact: it names a held subject and asks its relation; threshold: max Delta_i"},
      {MOKE_SETTING(scope_subject_min), Between(0, 1), nullptr,
       "Fact gate: the least trigram Dice between a held subject and the prompt's best-matching words"},
      {MOKE_SETTING(scope_alias_min), Between(0, 1), nullptr,
       "Fact gate: the same for a prompt that is the fact's own question but for the subject's spelling"},
      {MOKE_SETTING(scope_relation_min), Between(-1, 1), nullptr,
       "Fact gate: the least relation-key cosine for a rewording that shares a relation word"},
      {MOKE_SETTING(scope_bare_relation_min), Between(-1, 1), nullptr,
       "Fact gate: the same for a rewording with question words only (\"Who is X?\")"},
      {MOKE_SETTING(reedit_subject_min), Between(0, 1), nullptr,
       "An edit restates a held fact (and replaces its answer) when its subject is this alike ..."},
      {MOKE_SETTING(reedit_relation_min), Between(-1, 1), nullptr,
       "... and its relation the same template, or a rewording with a relation-key cosine of at least this"},
      {MOKE_SETTING(teach_end_of_answer), kAny, "false",
       "Train the end-of-sequence token after each answer, so that Ask stops there"},
      {MOKE_SETTING(expert_capacity), AtLeast(0), "0",
       "Live edits one expert holds before the next goes elsewhere or an expert is added; 0: no limit"},
      {MOKE_SETTING(max_experts), Between(1, 4096), nullptr, "Growth stops here; then later edits overwrite"},
      // WISE.
      {MOKE_SETTING(wise_mask_ratio), AboveUpTo(0, 1), nullptr, "WISE: share of the weights each side memory changes"},
      {MOKE_SETTING(wise_save_freq), AtLeast(1), nullptr, "WISE: edits per side memory before a new one starts"},
      // Speed.
      {MOKE_SETTING(frozen_prefix), kAny, nullptr, "Run the layers below the edit layer once per edit (same result)"},
      // Limits.
      {MOKE_SETTING(max_answer_tokens), AtLeast(1), nullptr, "Longest answer an edit may teach, in tokens"},
      {MOKE_SETTING(max_new_tokens), AtLeast(1), nullptr, "Ask's default and largest max_new_tokens"},
      {MOKE_SETTING(seed), kAny, nullptr, "Seed of every random choice (masks, expert draws, rehearsal)"},
  };
  return *table;
}

#undef MOKE_SETTING

// Rules that join settings; checked after every row's own range.
struct CrossRule {
  const char* key;  // the setting the message names
  const char* text;
  bool (*holds)(const EditorOptions&);
};

constexpr CrossRule kCrossRules[] = {
    {"mask_ratio", "mask_ratio x num_experts <= 1 when disjoint_masks is true",
     [](const EditorOptions& o) { return !o.disjoint_masks || o.mask_ratio * o.num_experts <= 1.0 + 1e-9; }},
    {"max_experts", "max_experts >= num_experts",
     [](const EditorOptions& o) { return o.max_experts >= o.num_experts; }},
};

const EditorOptions& Defaults() {
  static const EditorOptions defaults;
  return defaults;
}

absl::Status WrongType(const EditorSetting& s, const char* want) {
  return absl::InvalidArgumentError(absl::StrCat("setting \"", s.name, "\" must be ", want));
}

// Writes `v` into the row's field of *o, checking the JSON type (ranges are ValidateEditorOptions's).
absl::Status SetFromJson(const EditorSetting& s, const json& v, EditorOptions* o) {
  return std::visit(
      [&](auto member) -> absl::Status {
        auto& field = o->*member;
        using T = std::remove_reference_t<decltype(field)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) return WrongType(s, "a string");
          field = v.get<std::string>();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_boolean()) return WrongType(s, "true or false");
          field = v.get<bool>();
        } else if constexpr (kIsInteger<T>) {
          if (!v.is_number_integer()) return WrongType(s, "an integer");
          const bool fits = v.is_number_unsigned() ? std::in_range<T>(v.get<uint64_t>()) : std::in_range<T>(v.get<int64_t>());
          if (!fits) {
            return absl::InvalidArgumentError(absl::StrCat("setting \"", s.name, "\": ", v.dump(), " is out of range",
                                                           s.range.bounded() ? " (" + s.RangeText() + ")" : ""));
          }
          field = v.get<T>();
        } else if constexpr (std::is_floating_point_v<T>) {
          if (!v.is_number()) return WrongType(s, "a number");
          field = v.get<double>();
        } else {  // an enum
          if (!v.is_string()) return WrongType(s, absl::StrCat("one of ", s.RangeText()).c_str());
          return ParseEnum(s.name, v.get<std::string>(), &field);
        }
        return absl::OkStatus();
      },
      s.field);
}

// The row's value as a double (kInteger, kNumber).
double NumericValue(const EditorSetting& s, const EditorOptions& o) {
  return std::visit(
      [&](auto member) -> double {
        using T = std::remove_reference_t<decltype(o.*member)>;
        if constexpr (kIsInteger<T> || std::is_floating_point_v<T>) {
          return static_cast<double>(o.*member);
        } else {
          return 0;
        }
      },
      s.field);
}

std::string EscapeCell(const std::string& s) { return absl::StrReplaceAll(s, {{"|", "\\|"}}); }

}  // namespace

// ---- Enums ----

const char* EditMethodName(EditMethod m) { return NameOf(m); }
const char* RoutingName(Routing r) { return NameOf(r); }
const char* ScopeGateName(ScopeGate g) { return NameOf(g); }
absl::Status ParseEditMethod(const std::string& s, EditMethod* out) { return ParseEnum("method", s, out); }
absl::Status ParseRouting(const std::string& s, Routing* out) { return ParseEnum("routing", s, out); }
absl::Status ParseScopeGate(const std::string& s, ScopeGate* out) { return ParseEnum("scope_gate", s, out); }

// ---- Rows ----

const char* SettingKindName(SettingKind k) {
  switch (k) {
    case SettingKind::kString: return "string";
    case SettingKind::kBool: return "boolean";
    case SettingKind::kInteger: return "integer";
    case SettingKind::kNumber: return "number";
    case SettingKind::kChoice: return "choice";
  }
  return "?";
}

bool SettingRange::Contains(double v) const { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); }

bool SettingRange::bounded() const { return lo > -kInf || hi < kInf; }

SettingKind EditorSetting::kind() const {
  return std::visit(
      [](auto member) {
        using T = std::remove_reference_t<decltype(std::declval<EditorOptions&>().*member)>;
        if constexpr (std::is_same_v<T, std::string>) return SettingKind::kString;
        else if constexpr (std::is_same_v<T, bool>) return SettingKind::kBool;
        else if constexpr (kIsInteger<T>) return SettingKind::kInteger;
        else if constexpr (std::is_floating_point_v<T>) return SettingKind::kNumber;
        else return SettingKind::kChoice;
      },
      field);
}

std::vector<std::string> EditorSetting::choices() const {
  return std::visit(
      [](auto member) -> std::vector<std::string> {
        using T = std::remove_reference_t<decltype(std::declval<EditorOptions&>().*member)>;
        if constexpr (std::is_enum_v<T>) return OwnNames<T>();
        else return {};
      },
      field);
}

std::string EditorSetting::RangeText() const {
  const SettingKind k = kind();
  if (k == SettingKind::kChoice) return absl::StrJoin(choices(), ", ");
  if (k != SettingKind::kInteger && k != SettingKind::kNumber) return "";
  const SettingRange& r = range;
  const bool has_lo = r.lo > -kInf, has_hi = r.hi < kInf;
  if (has_lo && has_hi) {
    if (k == SettingKind::kInteger && !r.lo_open && !r.hi_open) return absl::StrCat(r.lo, "..", r.hi);
    return absl::StrCat(r.lo_open ? "(" : "[", r.lo, ", ", r.hi, r.hi_open ? ")" : "]");
  }
  if (has_lo) return absl::StrCat(r.lo_open ? "> " : ">= ", r.lo);
  if (has_hi) return absl::StrCat(r.hi_open ? "< " : "<= ", r.hi);
  return "";
}

std::string EditorSetting::ValueJson(const EditorOptions& o) const {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = o.*member;
        using T = std::remove_cvref_t<decltype(v)>;
        if constexpr (std::is_enum_v<T>) return json(NameOf(v)).dump();
        else return json(v).dump();
      },
      field);
}

const std::vector<EditorSetting>& EditorSettings() { return Table(); }

std::vector<std::string> EditorSettingRules() {
  std::vector<std::string> out;
  for (const CrossRule& r : kCrossRules) out.push_back(r.text);
  return out;
}

std::string EditorSettingsText() {
  const auto& rows = EditorSettings();
  size_t wn = 3, wd = 7, wr = 5;
  for (const auto& s : rows) {
    wn = std::max(wn, std::string(s.name).size());
    wd = std::max(wd, s.DefaultJson().size());
    wr = std::max(wr, s.RangeText().size());
  }
  auto pad = [](std::string s, size_t w) { return s.append(w + 2 - std::min(w, s.size()), ' '); };
  std::string out =
      "Editor settings: one JSON object in the --config file; every key is optional.\n"
      "\"profile\": \"paper\" sets the PAPER column (the paper's MoKE), \"moke+\" puts those keys back at their\n"
      "defaults; the profile is applied first and the file's other keys refine it.\n\n";
  absl::StrAppend(&out, pad("KEY", wn), pad("TYPE", 7), pad("DEFAULT", wd), pad("RANGE", wr), "PAPER\n");
  for (const auto& s : rows) {
    std::string line = absl::StrCat(pad(s.name, wn), pad(SettingKindName(s.kind()), 7), pad(s.DefaultJson(), wd),
                                    pad(s.RangeText(), wr), s.paper ? s.paper : "");
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n    ", s.help, "\n");
  }
  absl::StrAppend(&out, "\nRules across keys:\n");
  for (const std::string& r : EditorSettingRules()) absl::StrAppend(&out, "  ", r, "\n");
  return out;
}

std::string EditorSettingsMarkdown() {
  std::string out = "| key | type | default | range | paper | meaning |\n|---|---|---|---|---|---|\n";
  auto code = [](const std::string& s) { return s.empty() ? std::string() : "`" + EscapeCell(s) + "`"; };
  for (const auto& s : EditorSettings()) {
    absl::StrAppend(&out, "| `", s.name, "` | ", SettingKindName(s.kind()), " | ", code(s.DefaultJson()), " | ",
                    code(s.RangeText()), " | ", code(s.paper ? s.paper : ""), " | ", EscapeCell(s.help), " |\n");
  }
  absl::StrAppend(&out, "\nRules across keys: ");
  std::vector<std::string> rules;
  for (const std::string& r : EditorSettingRules()) rules.push_back("`" + r + "`");
  absl::StrAppend(&out, absl::StrJoin(rules, "; "), ".\n");
  return out;
}

// ---- Reading, profiles, validation ----

absl::Status ApplyProfile(const std::string& profile, EditorOptions* o) {
  const bool paper = profile == "paper";
  if (!paper && profile != "moke+") {
    return absl::InvalidArgumentError(absl::StrCat("setting \"profile\": \"", profile, "\" is not one of paper, moke+"));
  }
  for (const auto& s : EditorSettings()) {
    if (s.paper == nullptr) continue;
    if (paper) {
      if (absl::Status st = SetFromJson(s, json::parse(s.paper), o); !st.ok()) return st;
    } else {
      std::visit([&](auto member) { o->*member = Defaults().*member; }, s.field);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseEditorOptions(std::string_view json_text, EditorOptions* options) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  EditorOptions o = *options;
  if (auto p = j.find("profile"); p != j.end()) {
    if (!p->is_string()) return absl::InvalidArgumentError("setting \"profile\" must be a string");
    if (absl::Status s = ApplyProfile(p->get<std::string>(), &o); !s.ok()) return s;
  }
  const auto& rows = EditorSettings();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "profile") continue;  // applied above
    auto row = std::find_if(rows.begin(), rows.end(), [&](const EditorSetting& s) { return it.key() == s.name; });
    if (row == rows.end()) return absl::InvalidArgumentError(absl::StrCat("unknown setting \"", it.key(), "\""));
    if (absl::Status s = SetFromJson(*row, it.value(), &o); !s.ok()) return s;
  }
  if (absl::Status s = ValidateEditorOptions(o); !s.ok()) return s;
  *options = std::move(o);
  return absl::OkStatus();
}

absl::Status LoadEditorOptions(const std::string& path, EditorOptions* o) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::Status s = ParseEditorOptions(ss.str(), o);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  return absl::OkStatus();
}

absl::Status ValidateEditorOptions(const EditorOptions& o) {
  for (const auto& s : EditorSettings()) {
    const SettingKind k = s.kind();
    if (k != SettingKind::kInteger && k != SettingKind::kNumber) continue;
    if (!s.range.Contains(NumericValue(s, o))) {
      const bool both = s.range.lo > -kInf && s.range.hi < kInf;
      return absl::InvalidArgumentError(absl::StrCat("setting \"", s.name, "\" is ", s.ValueJson(o), "; it must be ",
                                                     !s.range.bounded() ? "a number" : both ? "in " : "", s.RangeText()));
    }
  }
  for (const CrossRule& r : kCrossRules) {
    if (!r.holds(o)) return absl::InvalidArgumentError(absl::StrCat("setting \"", r.key, "\" breaks the rule ", r.text));
  }
  return absl::OkStatus();
}

}  // namespace moke
