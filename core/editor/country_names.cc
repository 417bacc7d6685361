#include "core/editor/country_names.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/editor/subject.h"

namespace moke {

namespace {

// A name's words after NormalizeForMatch (empty ones dropped), as NameVariant splits them.
std::vector<std::string> NormalizedWords(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;)
    if (std::string n = NormalizeForMatch(w); !n.empty()) words.push_back(std::move(n));
  return words;
}

// The words joined by one space, without a leading "the".
std::string Key(const std::vector<std::string>& words) {
  std::string key;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i == 0 && words[i] == "the") continue;
    if (!key.empty()) key.push_back(' ');
    key += words[i];
  }
  return key;
}

}  // namespace

absl::StatusOr<CountryNames> CountryNames::Parse(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("3166-1") || !doc["3166-1"].is_array()) {
    return absl::InvalidArgumentError("country names: expected a JSON object with a \"3166-1\" list");
  }
  CountryNames out;
  int number = 0;
  for (const nlohmann::json& c : doc["3166-1"]) {
    if (!c.is_object()) return absl::InvalidArgumentError(absl::StrCat("country names: entry ", number, " is not an object"));
    bool named = false;
    for (const char* field : {"alpha_2", "alpha_3", "name", "official_name", "common_name"}) {
      auto it = c.find(field);
      if (it == c.end()) continue;
      if (!it->is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("country names: entry ", number, ": \"", field, "\" is not a string"));
      }
      std::string name = it->get<std::string>();
      // "Bolivia, Plurinational State of": the name before the comma too.
      for (const std::string& n : {name, name.substr(0, name.find(','))}) {
        if (std::string k = Key(NormalizedWords(n)); !k.empty()) {
          out.index_.emplace(k, number);
          named = true;
        }
      }
    }
    if (!named) return absl::InvalidArgumentError(absl::StrCat("country names: entry ", number, " has no name"));
    ++number;
  }
  out.countries_ = static_cast<size_t>(number);
  return out;
}

absl::StatusOr<CountryNames> CountryNames::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("country names: cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str());
}

const CountryNames& CountryNames::System() {
  static const CountryNames table = [] {
    absl::StatusOr<CountryNames> t = Load(kSystemPath);
    return t.ok() ? *std::move(t) : CountryNames();
  }();
  return table;
}

int CountryNames::Find(const std::vector<std::string>& words) const {
  auto it = index_.find(Key(words));
  return it == index_.end() ? -1 : it->second;
}

bool CountryNames::Same(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
  if (index_.empty()) return false;
  const int c = Find(a);
  return c >= 0 && c == Find(b);
}

bool CountryNames::Same(const std::string& a, const std::string& b) const {
  return !index_.empty() && Same(NormalizedWords(a), NormalizedWords(b));
}

}  // namespace moke
