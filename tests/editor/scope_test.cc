// The scope decision on hand-made keys: the subject and the relation each decide on their own.
#include "core/editor/scope.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace moke {
namespace {

at::Tensor Unit(std::vector<float> v) {
  at::Tensor t = at::tensor(v);
  return t / t.norm();
}

// A fact key with synthetic relation keys (no model): `relation_keys[i]` for relation i.
FactKey Fact(const std::string& question, const std::string& subject, std::vector<at::Tensor> relation_keys,
             const std::vector<std::string>& aliases = {}) {
  FactKey k;
  k.question = question;
  k.question_trigrams = Trigrams(question);
  k.subject = subject;
  k.names.push_back(subject);
  for (const auto& a : aliases) k.names.push_back(a);
  for (const auto& n : k.names) k.name_trigrams.push_back(Trigrams(n));
  const size_t at = question.find(subject);
  k.relations.push_back({TemplateWords(question, TextSpan{at, at + subject.size(), 1}), relation_keys[0]});
  return k;
}

// A query whose relation key is always `key` (what the model would compute for it).
FactMatch Match(const FactKey& f, const std::string& text, at::Tensor key, ScopeThresholds t = {}) {
  return MatchFact(f, ScopeQuery{text, [key](const TextSpan&) { return key; }}, t);
}

const at::Tensor kMother = Unit({1, 0, 0});
const at::Tensor kNear = Unit({1, 0.5, 0});  // cos 0.894 with kMother
const at::Tensor kFar = Unit({0, 0, 1});     // cos 0

TEST(FactScope, TheSameQuestionAndAnAliasInItsWordingAreInScope) {
  const FactKey f = Fact("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  FactMatch m = Match(f, "The name of the mother of Leonardo DiCaprio is", kFar);
  EXPECT_TRUE(m.in_scope);
  EXPECT_TRUE(m.same_template) << "the relation key is not needed for the fact's own wording";
  EXPECT_DOUBLE_EQ(m.subject, 1.0);
  m = Match(f, "The name of the mother of Leo DiCaprio is", kFar);
  EXPECT_TRUE(m.in_scope);
  EXPECT_DOUBLE_EQ(m.subject, 16.0 / 23.0);  // subject_test.cc works this Dice out
}

TEST(FactScope, InitialsInTheFactsOwnWordingAreInScope) {
  const FactKey f = Fact("The place of birth of Robert F. Kennedy is", "Robert F. Kennedy", {kMother});
  FactMatch m = Match(f, "The place of birth of RFK is", kFar);
  EXPECT_TRUE(m.in_scope) << "no trigram in common, but the initials in the same template";
  EXPECT_TRUE(m.same_template);
  EXPECT_FALSE(Match(f, "The place of death of RFK is", kMother).in_scope) << "another template: not by initials";
  EXPECT_FALSE(Match(f, "The place of birth of JFK is", kMother).in_scope);
}

TEST(FactScope, AnotherSubjectInTheSameWordingIsLeftAlone) {
  const FactKey f = Fact("The doctoral student of Jacqueline Arnaud is", "Jacqueline Arnaud", {kMother});
  const FactMatch m = Match(f, "The doctoral student of Baruch Awerbuch is", kMother);
  EXPECT_FALSE(m.in_scope);
  EXPECT_LT(m.subject, 0.4);
}

TEST(FactScope, ALikeNamedOtherSubjectIsLeftAlone) {
  const FactKey f = Fact("The name of the director of Vikrant Rona is", "Vikrant Rona", {kMother});
  const FactMatch m = Match(f, "The name of the director of Vikram is", kMother);
  EXPECT_FALSE(m.in_scope) << "Dice " << m.subject << " is under alias_min 0.5";
  const FactKey g = Fact("The name of the country which 2008 United States presidential election is associated with is",
                         "2008 United States presidential election", {kMother});
  EXPECT_FALSE(
      Match(g, "The name of the country which 2020 United States presidential election in Georgia is associated with is",
            kMother)
          .in_scope)
      << "another year is another entity";
}

TEST(FactScope, AnotherRelationOfTheSameSubjectIsLeftAloneWhateverTheActivations) {
  const FactKey f = Fact("The place of birth of Jim Brown is", "Jim Brown", {kMother});
  EXPECT_FALSE(Match(f, "The place of death of Jim Brown is", kMother).in_scope) << "birth -> death";
  const FactKey g = Fact("Big Mouth is followed by", "Big Mouth", {kMother});
  EXPECT_FALSE(Match(g, "Big Mouth follows", kMother).in_scope) << "passive -> active";
  const FactKey h = Fact("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  EXPECT_FALSE(Match(h, "The name of the country of citizenship of Leonardo DiCaprio is", kMother).in_scope);
}

TEST(FactScope, ARewordingSharingARelationWordNeedsANearRelationKey) {
  const FactKey f = Fact("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  const std::string q = "Who is Leonardo DiCaprio's mother?";
  FactMatch m = Match(f, q, kNear);
  EXPECT_TRUE(m.in_scope);
  EXPECT_FALSE(m.same_template);
  EXPECT_NEAR(m.relation, 2 / std::sqrt(5.0), 1e-6);
  EXPECT_EQ(q.substr(m.span.begin, m.span.end - m.span.begin), "Leonardo DiCaprio");
  EXPECT_FALSE(Match(f, q, kFar).in_scope) << "cosine 0 < relation_min";
  ScopeThresholds strict;
  strict.relation_min = 0.95;
  EXPECT_FALSE(Match(f, q, kNear, strict).in_scope) << "0.894 < 0.95";
}

TEST(FactScope, DecideScopePicksTheFactTheQuestionAsks) {
  const FactKey mother = Fact("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  const FactKey father = Fact("The name of the father of Leonardo DiCaprio is", "Leonardo DiCaprio", {kFar});
  const FactKey other = Fact("The name of the father of Kanye West is", "Kanye West", {kFar});
  const std::vector<const FactKey*> facts = {&mother, &other, &father};
  const ScopeQuery q{"The name of the father of Leo DiCaprio is", [](const TextSpan&) { return kFar; }};
  ScopeDecision d = DecideScope(facts, q, ScopeThresholds{});
  EXPECT_EQ(d.index, 2);
  EXPECT_TRUE(d.match.same_template);
  const ScopeQuery none{"What is the capital of France?", [](const TextSpan&) { return kFar; }};
  d = DecideScope(facts, none, ScopeThresholds{});
  EXPECT_EQ(d.index, -1);
}

TEST(FactScope, AFactWithoutASubjectMatchesItsWordingOnly) {
  FactKey f;
  f.question = "what is the capital of france";
  f.question_trigrams = Trigrams(f.question);
  EXPECT_TRUE(Match(f, "What is the capital of France?", kFar).in_scope);
  EXPECT_FALSE(Match(f, "what is the capital of spain", kFar).in_scope);
}

TEST(FactScope, SameFactIsTheSameSubjectAndRelation) {
  const ReEditThresholds t;
  const FactKey held = Fact("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  EXPECT_TRUE(SameFact(held, held, t));
  const FactKey spelled = Fact("The name of the mother of Leonardo di Caprio is", "Leonardo di Caprio", {kFar});
  EXPECT_TRUE(SameFact(held, spelled, t)) << "the same name normalised, the same template";
  const FactKey reworded = Fact("Who is the mother of Leonardo DiCaprio?", "Leonardo DiCaprio", {kMother});
  EXPECT_TRUE(SameFact(held, reworded, t)) << "shares 'mother' and the relation key is the same";
  const FactKey reworded_near = Fact("Who is the mother of Leonardo DiCaprio?", "Leonardo DiCaprio", {kNear});
  EXPECT_TRUE(SameFact(held, reworded_near, t)) << "0.894 >= reedit relation_min 0.5";
  ReEditThresholds strict = t;
  strict.relation_min = 0.9;
  EXPECT_FALSE(SameFact(held, reworded_near, strict)) << "0.894 < 0.9";
  const FactKey reworded_far = Fact("Who is the mother of Leonardo DiCaprio?", "Leonardo DiCaprio", {kFar});
  EXPECT_FALSE(SameFact(held, reworded_far, t)) << "a shared relation word, but cosine 0";
  const FactKey father = Fact("The name of the father of Leonardo DiCaprio is", "Leonardo DiCaprio", {kMother});
  EXPECT_FALSE(SameFact(held, father, t));
  const FactKey other = Fact("The name of the mother of Kanye West is", "Kanye West", {kMother});
  EXPECT_FALSE(SameFact(held, other, t));
}

}  // namespace
}  // namespace moke
