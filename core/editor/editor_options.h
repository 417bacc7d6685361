// Settings of the model and of the knowledge editor (the config file's content). Defaults are the
// values that work on the shared small model (REFERENCE section 10); LLaMA-2 values are in the README.
//
// Every field of EditorOptions is one row of the settings table (EditorSettings(), in
// editor_options.cc): the JSON key (the field's name), its kind, its range or choices, the value the
// "paper" profile gives it and one line of help. The default is the field's initialiser below. The
// table drives parsing (LoadEditorOptions), validation (ValidateEditorOptions), the profiles
// (ApplyProfile), `moke-server --help-config` and the README's table of settings. To add a setting: add
// the field here and one row there.
//
// Thread-safety: EditorOptions is a plain value. The table is immutable after its first use (a
// function-local static) and safe to read from any thread.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace moke {

enum class EditMethod { kMoke, kWise };
enum class Routing { kRouter, kActivation, kActivationRouter };
// How Ask decides "is this edited knowledge, and which expert":
// kThreshold: the paper's gate (max Delta_i over per-expert thresholds, then the routing mode);
// kFact: the held fact the prompt asks about, by its subject and its relation (scope.h), beyond the paper.
enum class ScopeGate { kThreshold, kFact };

const char* EditMethodName(EditMethod m);
const char* RoutingName(Routing r);
absl::Status ParseEditMethod(const std::string& s, EditMethod* out);
absl::Status ParseRouting(const std::string& s, Routing* out);
const char* ScopeGateName(ScopeGate g);
absl::Status ParseScopeGate(const std::string& s, ScopeGate* out);

struct EditorOptions {
  // Model.
  std::string model_dir;
  std::string device = "cpu";
  std::string dtype = "auto";
  int threads = 0;  // 0: chosen from the model's size and the CPUs the process may use (process_tuning.h)

  // Method.
  EditMethod method = EditMethod::kMoke;
  int64_t edit_layer = -1;  // -1: round(0.8 * n_layers) - 1 (3 for the 5-layer small model, 25 for 32 layers)
  int num_experts = 3;
  double mask_ratio = 0.3;
  bool disjoint_masks = true;
  double select_eps = 0.35;            // Eq. 3
  bool activation_selection = true;    // off: every edit goes to a random expert (ablation)
  double lr = 0.5;                     // SGD on the expert (the paper: 0.1)
  int max_iterations = 70;
  double clamp = 1.0;                  // |W_i - W_org| <= clamp
  double stop_loss = 0.02;
  double stop_delta = 1e-4;
  double alpha = 0.75, beta = 3.0, gamma = 1.5;  // Eq. 5-6 margins
  bool margin_loss = false;            // paper: true (Eq. 5)
  bool memory_loss = false;            // paper: true (Eq. 6)
  int replay_capacity = 50;
  bool augment = true;                 // self-generated prefixes + subject noise
  int num_prefixes = 10;
  // Answering.
  Routing routing = Routing::kActivationRouter;
  double router_weight = 0.5;          // weight of the router probabilities in act+router ranking
  double threshold_factor = 0.88;      // gate: beta' = factor x min in-scope Delta seen in training
  int router_steps = 20;
  double router_lr = 1e-2;
  bool use_emr = true;                 // serve EMR merges of groups with overlapping masks (disjoint: exact)
  // Beyond the paper (issue 9), the default. {"profile": "paper"} in the config file gives the paper's
  // behaviour: retention 0, scope_gate threshold, margin_loss and memory_loss on.
  int retention = 16;                  // earlier edits of the same expert rehearsed per edit (bounded)
  ScopeGate scope_gate = ScopeGate::kFact;
  // kFact thresholds (scope.h; chosen on ZsRE, docs/benchmarks.md).
  double scope_subject_min = 0.6;      // the held subject found in a reworded prompt (trigram Dice)
  double scope_alias_min = 0.5;        // the subject spelled otherwise in the fact's own template
  double scope_relation_min = 0.5;     // relation key cosine of a rewording sharing a relation word
  double scope_bare_relation_min = 0.7;  // ... of a rewording with question words only
  double reedit_subject_min = 0.8;     // EditFact: the new subject against a held one (re-edit)
  double reedit_relation_min = 0.5;    // EditFact: relation key cosine of a reworded re-edit
  bool teach_end_of_answer = true;     // train the end-of-sequence token after the answer: answers stop
  // Growth (MoKE): an expert holds at most expert_capacity live edits; a new edit that would overflow
  // it goes to another expert with room, and when none has room one expert is added (masks drawn in
  // groups of num_experts, disjoint within a group; EMR merges each group). 0: no limit (the paper).
  int expert_capacity = 8;
  int max_experts = 128;               // growth stops here; the paper's overwrite takes over
  // WISE.
  double wise_mask_ratio = 0.2;
  int wise_save_freq = 500;
  // Speed.
  bool frozen_prefix = true;           // run layers below the edit layer once per edit
  // Limits.
  int max_answer_tokens = 64;  // the small model's byte-level vocabulary spells some ZsRE answers in 33+ tokens
  int max_new_tokens = 64;  // Ask default and limit: room for the longest answer an edit may teach
  uint64_t seed = 42;
};

// ---- The settings table ----

// What a setting takes in the config file.
enum class SettingKind { kString, kBool, kInteger, kNumber, kChoice };
const char* SettingKindName(SettingKind k);  // "string", "boolean", "integer", "number", "choice"

// Numeric bounds of a setting (kInteger, kNumber); an infinite bound is no bound.
struct SettingRange {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;  // lo itself is outside
  bool hi_open = false;  // hi itself is outside
  bool Contains(double v) const;
  bool bounded() const;
};

// The field a row reads and writes.
using EditorOptionsField =
    std::variant<std::string EditorOptions::*, bool EditorOptions::*, int EditorOptions::*, int64_t EditorOptions::*,
                 uint64_t EditorOptions::*, double EditorOptions::*, EditMethod EditorOptions::*,
                 Routing EditorOptions::*, ScopeGate EditorOptions::*>;

// One row of the table.
struct EditorSetting {
  const char* name;  // the JSON key, spelled as the field
  EditorOptionsField field;
  SettingRange range;
  const char* paper;  // JSON text of the value the "paper" profile sets; nullptr: the profiles leave it
  const char* help;   // one line

  SettingKind kind() const;
  std::vector<std::string> choices() const;  // kChoice: the accepted names (aliases left out)
  // "1..64", ">= 0", "(0, 1]", "moke, wise"; empty when any value of the kind is accepted.
  std::string RangeText() const;
  // The field's value in `options` as JSON text ("0.1", "true", "\"nearest\"").
  std::string ValueJson(const EditorOptions& options) const;
  std::string DefaultJson() const { return ValueJson(EditorOptions{}); }
};

// Every setting, in the order of the fields above.
const std::vector<EditorSetting>& EditorSettings();
// The rules that join two settings, one line each ("max_experts >= num_experts").
std::vector<std::string> EditorSettingRules();

// The table for people: `moke-server --help-config` (plain text, one key a line) and the README's
// Markdown table (between <!-- editor-settings:begin --> and <!-- editor-settings:end -->; a ctest
// checks that the two agree).
std::string EditorSettingsText();
std::string EditorSettingsMarkdown();

// ---- Reading, profiles, validation ----

// Sets the settings a profile names: "paper" (the paper's MoKE: no rehearsal, no growth, the
// Delta-threshold gate, margin and memory losses; the table's "paper" column) or "moke+" (those same
// settings back at their defaults: this project's method). Other settings are left as they are.
absl::Status ApplyProfile(const std::string& profile, EditorOptions* options);
// Parses a JSON object of settings onto *options and validates the result. Every key is optional; a
// "profile" key is applied first, so that the other keys refine it. An unknown key, a value of the wrong
// type, a name that is not one of the choices or a value out of range is INVALID_ARGUMENT naming the
// key; on any error *options is left unchanged.
absl::Status ParseEditorOptions(std::string_view json_text, EditorOptions* options);
// ParseEditorOptions on a file's content; messages start with the path. A missing file is NOT_FOUND.
absl::Status LoadEditorOptions(const std::string& path, EditorOptions* options);
// Checks every setting's range and the cross-setting rules; the message names the setting. The one
// check: LoadEditorOptions runs it on what it read, Editor::Create on whatever it is given.
absl::Status ValidateEditorOptions(const EditorOptions& options);

}  // namespace moke
