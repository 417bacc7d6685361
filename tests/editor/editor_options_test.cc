// The settings table (core/editor/editor_options.cc): every field of EditorOptions has exactly one row;
// every row parses, reads back, rejects the wrong JSON type and enforces its range at both bounds (the
// cases are generated from the table, so a new row is tested without a new test); the profiles set what
// the paper describes; the cross-setting rules hold; errors leave the options untouched.
#include "core/editor/editor_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/testing/temp_dir.h"

namespace moke {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

// ---- Counting EditorOptions's fields without the table: an aggregate takes at most one initialiser
// per field, so the largest N for which EditorOptions{x1, ..., xN} compiles is the field count. ----
struct AnyValue {
  template <typename T>
  operator T() const;  // never defined: used only where nothing is evaluated
};

template <typename T, typename... A>
constexpr size_t CountFields() {
  if constexpr (requires { T{std::declval<A>()..., AnyValue{}}; }) {
    return CountFields<T, A..., AnyValue>();
  } else {
    return sizeof...(A);
  }
}

const EditorSetting& Row(const std::string& name) {
  for (const auto& s : EditorSettings()) {
    if (name == s.name) return s;
  }
  ADD_FAILURE() << "no row " << name;
  return EditorSettings().front();
}

absl::Status Parse(const json& j, EditorOptions* o) { return ParseEditorOptions(j.dump(), o); }

// Settings under which every row's value can be tested alone: one expert (so that no mask_ratio and no
// max_experts is ruled out by num_experts) and overlapping masks allowed.
json Companions() { return {{"num_experts", 1}, {"disjoint_masks", false}}; }

bool IsNumeric(const EditorSetting& s) {
  return s.kind() == SettingKind::kInteger || s.kind() == SettingKind::kNumber;
}

// A valid value of the row's kind that differs from its value in `from`.
json OtherValue(const EditorSetting& s, const EditorOptions& from) {
  const json d = json::parse(s.ValueJson(from));
  switch (s.kind()) {
    case SettingKind::kString: return d.get<std::string>() + "x";
    case SettingKind::kBool: return !d.get<bool>();
    case SettingKind::kChoice:
      for (const std::string& c : s.choices()) {
        if (c != d.get<std::string>()) return c;
      }
      break;
    case SettingKind::kInteger: {
      // seed is a uint64 whose default fits in int64 too.
      const int64_t v = d.get<int64_t>();
      return s.range.Contains(static_cast<double>(v + 1)) ? v + 1 : v - 1;
    }
    case SettingKind::kNumber: return d.get<double>() / 2;  // every default is positive; half of it is in range
  }
  ADD_FAILURE() << s.name << ": no other value";
  return d;
}

TEST(EditorSettingsTable, OneRowPerFieldAndOneFieldPerRow) {
  EXPECT_EQ(EditorSettings().size(), CountFields<EditorOptions>()) << "a field of EditorOptions has no row (or a row too many)";
  std::set<std::string> names;
  std::set<size_t> fields;
  for (const auto& s : EditorSettings()) {
    EXPECT_TRUE(names.insert(s.name).second) << "two rows named " << s.name;
    // Two rows on one field would show as one row's change moving another row's value (RoundTrip below);
    // here the variant's alternative plus the member's offset identify the field.
    const size_t id = std::visit(
        [](auto member) {
          EditorOptions o;
          return reinterpret_cast<const char*>(&(o.*member)) - reinterpret_cast<const char*>(&o);
        },
        s.field);
    EXPECT_TRUE(fields.insert(id).second) << s.name << " shares its field with another row";
    EXPECT_NE(std::string(s.help), "") << s.name;
  }
}

TEST(EditorSettingsTable, DefaultsAreValidAndAreTheStructsInitialisers) {
  EXPECT_TRUE(ValidateEditorOptions(EditorOptions{}).ok());
  // Spot checks against the values REFERENCE section 10 and issue 9 give (not read from the table).
  EXPECT_EQ(Row("lr").DefaultJson(), "0.5");  // tuned on ZsRE; the paper profile keeps 0.1
  EXPECT_EQ(Row("num_experts").DefaultJson(), "3");
  EXPECT_EQ(Row("scope_gate").DefaultJson(), "\"fact\"");
  EXPECT_EQ(Row("routing").DefaultJson(), "\"activation+router\"");
  EXPECT_EQ(Row("scope_subject_min").DefaultJson(), "0.6");
  EXPECT_EQ(Row("teach_end_of_answer").DefaultJson(), "true");
  EXPECT_EQ(Row("model_dir").DefaultJson(), "\"\"");
  EXPECT_EQ(Row("seed").DefaultJson(), "42");
  EXPECT_EQ(Row("frozen_prefix").DefaultJson(), "true");
}

// Every row: a non-default value set through JSON is read back from the field, and nothing else moves.
TEST(EditorSettingsTable, EveryRowRoundTrips) {
  EditorOptions base;
  ASSERT_TRUE(Parse(Companions(), &base).ok());
  for (const auto& s : EditorSettings()) {
    json j = Companions();
    const json v = OtherValue(s, base);
    j[s.name] = v;
    EditorOptions o;
    ASSERT_TRUE(Parse(j, &o).ok()) << s.name << " = " << v.dump() << ": " << Parse(j, &o);
    EXPECT_EQ(s.ValueJson(o), v.dump()) << s.name;
    EXPECT_NE(s.ValueJson(o), s.ValueJson(base)) << s.name;
    for (const auto& other : EditorSettings()) {
      if (&other != &s) EXPECT_EQ(other.ValueJson(o), other.ValueJson(base)) << "setting " << s.name << " moved " << other.name;
    }
  }
}

// The same through the fields themselves, for a few rows of each type (independent of ValueJson).
TEST(EditorSettingsTable, ParsedValuesLandInTheirFields) {
  EditorOptions o;
  ASSERT_TRUE(ParseEditorOptions(R"({"lr": 0.25, "edit_layer": 2, "seed": 18446744073709551615, "device": "cuda:1",
                                     "augment": false, "method": "wise", "routing": "act", "scope_gate": "threshold",
                                     "max_experts": 3})",
                                 &o)
                  .ok());
  EXPECT_EQ(o.lr, 0.25);
  EXPECT_EQ(o.edit_layer, 2);
  EXPECT_EQ(o.seed, 18446744073709551615ull);
  EXPECT_EQ(o.device, "cuda:1");
  EXPECT_FALSE(o.augment);
  EXPECT_EQ(o.method, EditMethod::kWise);
  EXPECT_EQ(o.routing, Routing::kActivation);  // "act" is an alias
  EXPECT_EQ(o.scope_gate, ScopeGate::kThreshold);
  EXPECT_EQ(o.max_experts, 3);
  EXPECT_EQ(o.num_experts, 3);  // untouched
}

TEST(EditorSettingsTable, UnknownKeyIsNamedAndNothingChanges) {
  EditorOptions o;
  absl::Status s = ParseEditorOptions(R"({"lr": 0.25, "num_expertz": 4})", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown setting \"num_expertz\""));
  EXPECT_EQ(o.lr, 0.5);
  EXPECT_EQ(ParseEditorOptions("[1, 2]", &o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseEditorOptions("{\"lr\": ", &o).code(), absl::StatusCode::kInvalidArgument);
}

// Every row: a value of the wrong JSON type is refused with the key and the expected type.
TEST(EditorSettingsTable, WrongTypeNamesKeyAndExpectedType) {
  for (const auto& s : EditorSettings()) {
    std::vector<std::pair<json, std::string>> cases;
    switch (s.kind()) {
      case SettingKind::kString: cases = {{5, "a string"}, {true, "a string"}}; break;
      case SettingKind::kBool: cases = {{1, "true or false"}, {"true", "true or false"}}; break;
      case SettingKind::kInteger: cases = {{1.5, "an integer"}, {"1", "an integer"}, {false, "an integer"}}; break;
      case SettingKind::kNumber: cases = {{"0.5", "a number"}, {nullptr, "a number"}}; break;
      case SettingKind::kChoice: cases = {{1, "one of " + s.RangeText()}}; break;
    }
    for (const auto& [v, want] : cases) {
      EditorOptions o;
      absl::Status st = Parse({{s.name, v}}, &o);
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << s.name << " = " << v.dump();
      EXPECT_THAT(std::string(st.message()), HasSubstr("\"" + std::string(s.name) + "\"")) << v.dump();
      EXPECT_THAT(std::string(st.message()), HasSubstr(want)) << s.name << " = " << v.dump();
    }
  }
}

TEST(EditorSettingsTable, ChoiceOutsideTheListNamesTheChoices) {
  EditorOptions o;
  absl::Status s = ParseEditorOptions(R"({"routing": "nearest"})", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"routing\": \"nearest\" is not one of router, activation, activation+router"));
  Routing r;
  EXPECT_FALSE(ParseRouting("act+rooter", &r).ok());
  ASSERT_TRUE(ParseRouting("act+router", &r).ok());
  EXPECT_EQ(r, Routing::kActivationRouter);
  EXPECT_STREQ(RoutingName(r), "activation+router");
}

TEST(EditorSettingsTable, IntegersBeyondTheirTypeAreRefused) {
  EditorOptions o;
  for (const char* text : {R"({"threads": 4294967296})", R"({"max_iterations": -2147483649})", R"({"seed": -1})"}) {
    absl::Status s = ParseEditorOptions(text, &o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(s.message()), HasSubstr("out of range")) << text;
  }
  EXPECT_EQ(o.threads, 0);
}

// Every bounded row, at each finite bound: the value just inside is accepted, the one just outside is
// refused with the key and the range.
TEST(EditorSettingsTable, EveryRangeBoundJustInsideAndJustOutside) {
  int bounds = 0;
  for (const auto& s : EditorSettings()) {
    if (!IsNumeric(s)) continue;
    const bool integer = s.kind() == SettingKind::kInteger;
    auto step = [&](double v, double dir) { return integer ? v + dir : v + dir * 1e-9 * std::max(1.0, std::abs(v)); };
    auto value = [&](double v) { return integer ? json(static_cast<int64_t>(v)) : json(v); };
    std::vector<std::pair<double, double>> inside_outside;
    const SettingRange& r = s.range;
    if (std::isfinite(r.lo)) inside_outside.push_back(r.lo_open ? std::pair{step(r.lo, 1), r.lo} : std::pair{r.lo, step(r.lo, -1)});
    if (std::isfinite(r.hi)) inside_outside.push_back(r.hi_open ? std::pair{step(r.hi, -1), r.hi} : std::pair{r.hi, step(r.hi, 1)});
    for (const auto& [in, out] : inside_outside) {
      ++bounds;
      json j = Companions();
      j[s.name] = value(in);
      EditorOptions o;
      EXPECT_TRUE(Parse(j, &o).ok()) << s.name << " = " << value(in).dump() << ": " << Parse(j, &o);
      j[s.name] = value(out);
      absl::Status st = Parse(j, &o);
      EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << s.name << " = " << value(out).dump();
      EXPECT_THAT(std::string(st.message()), HasSubstr("\"" + std::string(s.name) + "\"")) << value(out).dump();
      EXPECT_THAT(std::string(st.message()), HasSubstr(s.RangeText())) << value(out).dump();
    }
  }
  EXPECT_GE(bounds, 30);  // the table has ranges; an empty loop would prove nothing
}

TEST(EditorSettingsTable, RangesReadAsWritten) {
  EXPECT_EQ(Row("num_experts").RangeText(), "1..64");
  EXPECT_EQ(Row("mask_ratio").RangeText(), "(0, 1]");
  EXPECT_EQ(Row("scope_subject_min").RangeText(), "[0, 1]");
  EXPECT_EQ(Row("scope_relation_min").RangeText(), "[-1, 1]");
  EXPECT_EQ(Row("lr").RangeText(), "> 0");
  EXPECT_EQ(Row("threads").RangeText(), ">= 0");
  EXPECT_EQ(Row("edit_layer").RangeText(), ">= -1");
  EXPECT_EQ(Row("scope_gate").RangeText(), "threshold, fact");
  EXPECT_EQ(Row("seed").RangeText(), "");
}

TEST(EditorSettingsTable, NotANumberIsOutOfEveryRange) {
  EditorOptions o;
  o.select_eps = std::nan("");  // a row without bounds
  absl::Status s = ValidateEditorOptions(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"select_eps\""));
}

TEST(EditorSettingsTable, CrossSettingRules) {
  EditorOptions o;
  // Three disjoint masks of 0.34 need 102% of the columns.
  absl::Status s = ParseEditorOptions(R"({"mask_ratio": 0.34})", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"mask_ratio\""));
  EXPECT_TRUE(ParseEditorOptions(R"({"mask_ratio": 0.33})", &o).ok());
  EXPECT_TRUE(ParseEditorOptions(R"({"mask_ratio": 0.34, "disjoint_masks": false})", &o).ok());
  o = EditorOptions{};
  s = ParseEditorOptions(R"({"max_experts": 2})", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"max_experts\""));
  EXPECT_EQ(o.max_experts, 128);
  EXPECT_TRUE(ParseEditorOptions(R"({"max_experts": 2, "num_experts": 2})", &o).ok());
  EXPECT_EQ(EditorSettingRules().size(), 2u);
}

// "paper" is the paper's MoKE (README, REFERENCE): no rehearsal, no growth, the Delta-threshold gate,
// margin and memory losses. "moke+" puts those back. The file's other keys refine the profile.
TEST(EditorSettingsTable, Profiles) {
  EditorOptions o;
  ASSERT_TRUE(ApplyProfile("paper", &o).ok());
  EXPECT_EQ(o.retention, 0);
  EXPECT_EQ(o.expert_capacity, 0);
  EXPECT_EQ(o.scope_gate, ScopeGate::kThreshold);
  EXPECT_TRUE(o.margin_loss);
  EXPECT_TRUE(o.memory_loss);
  EXPECT_FALSE(o.teach_end_of_answer);
  EXPECT_EQ(o.lr, 0.1);  // the paper's step size
  EXPECT_EQ(o.num_experts, 3);  // the method's other settings are not the profile's
  EXPECT_TRUE(ValidateEditorOptions(o).ok());
  ASSERT_TRUE(ApplyProfile("moke+", &o).ok());
  for (const auto& s : EditorSettings()) EXPECT_EQ(s.ValueJson(o), s.DefaultJson()) << s.name;

  o = EditorOptions{};
  ASSERT_TRUE(ParseEditorOptions(R"({"retention": 4, "profile": "paper", "lr": 0.25})", &o).ok());
  EXPECT_EQ(o.retention, 4);  // the file's key wins over the profile whatever the order
  EXPECT_EQ(o.scope_gate, ScopeGate::kThreshold);
  EXPECT_EQ(o.lr, 0.25);

  absl::Status s = ParseEditorOptions(R"({"profile": "papper"})", &o);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"profile\": \"papper\" is not one of paper, moke+"));
  s = ParseEditorOptions(R"({"profile": 1})", &o);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"profile\" must be a string"));
}

TEST(EditorSettingsTable, LoadEditorOptionsNamesTheFile) {
  testing::TempDir dir("editor_options");
  EditorOptions o;
  absl::Status s = LoadEditorOptions(dir / "missing.json", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing.json"));
  std::ofstream(dir / "bad.json") << R"({"num_experts": 0})";
  s = LoadEditorOptions(dir / "bad.json", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir / "bad.json"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"num_experts\" is 0; it must be in 1..64"));
  std::ofstream(dir / "good.json") << R"({"profile": "paper", "num_experts": 2})";
  ASSERT_TRUE(LoadEditorOptions(dir / "good.json", &o).ok());
  EXPECT_EQ(o.num_experts, 2);
  EXPECT_EQ(o.retention, 0);
}

// --help-config: every key a line with its type, default and range, its help on the next.
TEST(EditorSettingsTable, TextListsEveryKey) {
  const std::string text = EditorSettingsText();
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (const auto& s : EditorSettings()) {
    auto it = std::find_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(std::string(s.name) + " ", 0) == 0; });
    ASSERT_NE(it, lines.end()) << s.name;
    EXPECT_THAT(*it, HasSubstr(SettingKindName(s.kind())));
    EXPECT_THAT(*it, HasSubstr(" " + s.DefaultJson()));
    EXPECT_THAT(*it, HasSubstr(s.RangeText()));
    if (s.paper) EXPECT_THAT(*it, ::testing::EndsWith(s.paper));
    ASSERT_NE(it + 1, lines.end());
    EXPECT_EQ(*(it + 1), std::string("    ") + s.help);
  }
  for (const std::string& r : EditorSettingRules()) EXPECT_THAT(text, HasSubstr(r));
}

// The README's form: a header, a separator, one row per key with five unescaped '|' between six cells.
TEST(EditorSettingsTable, MarkdownHasOneRowPerKey) {
  const std::string md = EditorSettingsMarkdown();
  std::vector<std::string> lines = absl::StrSplit(md, '\n');
  ASSERT_GE(lines.size(), EditorSettings().size() + 2);
  EXPECT_EQ(lines[0], "| key | type | default | range | paper | meaning |");
  for (size_t i = 0; i < EditorSettings().size(); ++i) {
    const std::string& l = lines[i + 2];
    EXPECT_EQ(l.rfind(std::string("| `") + EditorSettings()[i].name + "` |", 0), 0u) << l;
    int cells = 0;
    for (size_t k = 0; k < l.size(); ++k) cells += l[k] == '|' && (k == 0 || l[k - 1] != '\\');
    EXPECT_EQ(cells, 7) << l;
  }
  EXPECT_THAT(md, HasSubstr("\\|W_i - W_org\\|"));  // the clamp's help, escaped
}

}  // namespace
}  // namespace moke
