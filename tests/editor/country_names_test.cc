// CountryNames: a country's names and codes are one subject; the table from a hand-made iso_3166-1 text,
// its errors, and Debian's own table through NameVariant (skipped where iso-codes is not installed).
#include "core/editor/country_names.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/editor/subject.h"

namespace moke {
namespace {

constexpr const char* kTwo = R"({"3166-1": [
  {"alpha_2": "PH", "alpha_3": "PHL", "name": "Philippines", "official_name": "Republic of the Philippines"},
  {"alpha_2": "BO", "alpha_3": "BOL", "name": "Bolivia, Plurinational State of", "common_name": "Bolivia"},
  {"alpha_2": "UA", "alpha_3": "UKR", "name": "Ukraine"}
]})";

TEST(CountryNamesTest, NamesAndCodesOfOneCountryAreTheSame) {
  auto t = CountryNames::Parse(kTwo);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 3u);
  EXPECT_TRUE(t->Same("Philippines", "PH"));
  EXPECT_TRUE(t->Same("ph", "PHL"));                           // case and code length do not matter
  EXPECT_TRUE(t->Same("the Philippines", "Republic of the Philippines"));
  EXPECT_FALSE(t->Same("Bolivia", "Plurinational State of Bolivia"));  // not one of its names
  EXPECT_TRUE(t->Same("Bolivia", "Bolivia, Plurinational State of"));
  EXPECT_TRUE(t->Same("BOL", "Bolivia"));                      // the name before the comma
  EXPECT_FALSE(t->Same("Ukraine", "PH"));                      // two countries
  EXPECT_FALSE(t->Same("Ukraine", "Kyiv"));                    // not a country's name
  EXPECT_FALSE(t->Same("Kyiv", "Kyiv"));                       // the same text, but no country
}

TEST(CountryNamesTest, AnEmptyTableMatchesNothing) {
  CountryNames empty;
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_FALSE(empty.Same("Ukraine", "UA"));
  EXPECT_FALSE(empty.Same("Ukraine", "Ukraine"));
}

TEST(CountryNamesTest, BadTablesAreRefusedWithTheReason) {
  EXPECT_EQ(CountryNames::Parse("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CountryNames::Parse(R"({"3166-2": []})").status().code(), absl::StatusCode::kInvalidArgument);
  auto number = CountryNames::Parse(R"({"3166-1": [{"alpha_2": "UA", "name": 7}]})");
  ASSERT_FALSE(number.ok());
  EXPECT_NE(number.status().message().find("\"name\" is not a string"), std::string::npos) << number.status();
  EXPECT_FALSE(CountryNames::Parse(R"({"3166-1": [{"numeric": "804"}]})").ok());  // no name at all
  EXPECT_FALSE(CountryNames::Parse(R"({"3166-1": [3]})").ok());
  EXPECT_EQ(CountryNames::Load("/nonexistent/iso_3166-1.json").status().code(), absl::StatusCode::kNotFound);
}

TEST(CountryNamesTest, DebiansTableNamesCountriesForTheScope) {
  if (!std::filesystem::exists(CountryNames::kSystemPath)) {
    GTEST_SKIP() << "skipped: " << CountryNames::kSystemPath << " is not here (Debian package iso-codes)";
  }
  ASSERT_GT(CountryNames::System().size(), 200u);
  // The WikiCF subjects' first aliases.
  EXPECT_TRUE(NameVariant("Ukraine", "UA"));
  EXPECT_TRUE(NameVariant("Philippines", "PH"));
  EXPECT_TRUE(NameVariant("Poland", "POL"));
  EXPECT_TRUE(NameVariant("France", "fr"));
  EXPECT_TRUE(NameVariant("India", "Republic of India"));
  EXPECT_TRUE(NameVariant("Sri Lanka", "Democratic Socialist Republic of Sri Lanka"));
  EXPECT_FALSE(NameVariant("Ukraine", "PH"));
  EXPECT_FALSE(NameVariant("Austria", "Australia"));
  EXPECT_FALSE(NameVariant("Ukraine", "Kyiv"));
}

}  // namespace
}  // namespace moke
