// Countries by their other names: the short name, official name, common name and ISO 3166-1 codes of one
// country ("Philippines", "Republic of the Philippines", "PH", "PHL") name the same subject. The table
// comes from Debian's iso-codes package (/usr/share/iso-codes/json/iso_3166-1.json, installed by the
// README's set-up command); without that file the table is empty and no country matches another name.
// NameVariant (subject.h) asks it, so an Ask in the fact's own template that names the country otherwise
// ("The official language of UA is" for a fact about Ukraine) is in the fact's scope.
//
// Names are compared after NormalizeForMatch word by word, with a leading "the" left out.
//
// Thread-safety: immutable after construction; System() is built once, on first use, by any thread.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace moke {

class CountryNames {
 public:
  CountryNames() = default;

  // The table of an iso_3166-1.json text ({"3166-1": [{"alpha_2": ..., "alpha_3": ..., "name": ...,
  // "official_name": ..., "common_name": ...}, ...]}). INVALID_ARGUMENT when it is not that.
  static absl::StatusOr<CountryNames> Parse(std::string_view json);
  // The file at `path`; NOT_FOUND when it is missing.
  static absl::StatusOr<CountryNames> Load(const std::string& path);
  // Debian's table (kSystemPath), or an empty one when it is missing or unreadable.
  static const CountryNames& System();
  static constexpr const char* kSystemPath = "/usr/share/iso-codes/json/iso_3166-1.json";

  // True when `a` and `b` name the same country.
  bool Same(const std::string& a, const std::string& b) const;
  // The same for names already split into words and normalised (NormalizeForMatch per word, empty ones
  // dropped), as NameVariant has them.
  bool Same(const std::vector<std::string>& a, const std::vector<std::string>& b) const;
  size_t size() const { return countries_; }

 private:
  int Find(const std::vector<std::string>& words) const;  // the country's number, or -1

  std::unordered_map<std::string, int> index_;  // normalised name -> country
  size_t countries_ = 0;
};

}  // namespace moke
