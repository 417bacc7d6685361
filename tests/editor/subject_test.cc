// Subject finding and matching, with values worked out by hand.
#include "core/editor/subject.h"

#include <gtest/gtest.h>

namespace moke {
namespace {

std::string Text(const std::string& s, const TextSpan& span) { return s.substr(span.begin, span.end - span.begin); }

TEST(Subject, NormalisedTrigramsAndDice) {
  EXPECT_EQ(NormalizeForMatch("Leo Di-Caprio's!"), "leodicaprios");
  EXPECT_EQ(NormalizeForMatch("Pr\xC3\xBC" "fer"), "pr\xC3\xBC" "fer") << "non-ASCII bytes are kept";
  EXPECT_EQ(Trigrams("abcd").size(), 2u);
  EXPECT_EQ(Trigrams("Ab").size(), 1u);
  EXPECT_TRUE(Trigrams("?!").empty());
  // "leonardodicaprio": 14 distinct trigrams; "leodicaprio": 9; shared: leo odi dic ica cap apr pri rio.
  EXPECT_DOUBLE_EQ(Dice(Trigrams("Leonardo DiCaprio"), Trigrams("Leo DiCaprio")), 16.0 / 23.0);
  EXPECT_DOUBLE_EQ(Dice(Trigrams("Di Caprio"), Trigrams("DiCaprio")), 1.0);
  EXPECT_DOUBLE_EQ(Dice(Trigrams("Baruch Awerbuch"), Trigrams("Jacqueline Arnaud")), 0.0);
  EXPECT_DOUBLE_EQ(Dice({}, Trigrams("x")), 0.0);
}

TEST(Subject, FindsTheHeldSubjectOrItsClosestSpelling) {
  const std::string q = "The name of the country of citizenship of Leo DiCaprio is";
  TextSpan s = FindSubject(q, "Leonardo DiCaprio");
  EXPECT_EQ(Text(q, s), "Leo DiCaprio");
  EXPECT_DOUBLE_EQ(s.score, 16.0 / 23.0);
  const std::string p = "What is Pavel Bure's greatest strength?";
  s = FindSubject(p, "Pavel Bure");
  EXPECT_EQ(Text(p, s), "Pavel Bure") << "the possessive is not part of the name";
  EXPECT_DOUBLE_EQ(s.score, 1.0);
  const std::string other = "The doctoral student of Baruch Awerbuch is";
  EXPECT_LT(FindSubject(other, "Jacqueline Arnaud").score, 0.2);
  EXPECT_TRUE(FindSubject("", "Pavel Bure").empty());
}

TEST(Subject, NumbersTellEntitiesApart) {
  EXPECT_TRUE(SameNumbers("USS Leedstown (APA-56)", "Leedstown (APA-56)"));
  EXPECT_TRUE(SameNumbers("Leonardo DiCaprio", "Leo DiCaprio"));
  EXPECT_FALSE(SameNumbers("2008 United States presidential election", "2020 United States presidential election"));
  EXPECT_FALSE(SameNumbers("93rd Academy Awards", "Academy Award for Best Picture"));
  EXPECT_TRUE(SameNumbers("1969/1970 Hessen", "1970/1969 Hessen")) << "the same numbers in another order";
}

TEST(Subject, GuessesTheNamedEntity) {
  EXPECT_EQ(GuessSubject("Pavel Bure plays"), "Pavel Bure") << "a name may open the question";
  EXPECT_EQ(GuessSubject("When was the inception of IAAF Combined Events Challenge?"), "IAAF Combined Events Challenge");
  EXPECT_EQ(GuessSubject("Which team is the NBA champion?"), "NBA") << "a question word is not a subject";
  EXPECT_EQ(GuessSubject("The doctoral student of Jacqueline Arnaud is"), "Jacqueline Arnaud");
  EXPECT_EQ(GuessSubject("Who is the father of Gorsedd of Brittany?"), "Gorsedd of Brittany");
  EXPECT_EQ(GuessSubject("what is the capital of france"), "");
}

TEST(Subject, RelationTemplateCutsTheSubjectOut) {
  const std::string q = "The name of the mother of Leonardo DiCaprio is";
  EXPECT_EQ(RelationTemplate(q, FindSubject(q, "Leonardo DiCaprio")), "the name of the mother of <s> is");
  const std::string a = "The name of the mother of Leo DiCaprio is";
  EXPECT_EQ(RelationTemplate(a, FindSubject(a, "Leonardo DiCaprio")), "the name of the mother of <s> is")
      << "an alias gives the same relation";
  EXPECT_EQ(RelationTemplate("Who is Bob?", TextSpan{}), "who is bob");
}

}  // namespace
}  // namespace moke
