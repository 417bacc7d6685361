// The scope checks of issue 14 on small hand-made datasets (no shared data): the rewording rules, the
// paraphrase-list filter, and what build-stream puts in hard_loc, reworded, paraphrases, rel_spec,
// aliases and hint_unrelated.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/bench/answer_type.h"
#include "client/bench/rewording.h"
#include "client/bench/stream.h"
#include "client/bench/stream_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moke::bench {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;

}  // namespace

void PrintTo(const PromptAnswer& p, std::ostream* os) { *os << "{\"" << p.prompt << "\", \"" << p.answer << "\"}"; }

namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

TEST(RewordingTest, RulesChangeTheFormOfCommonTemplates) {
  EXPECT_THAT(RewordQuestion("What is the position of Henry Manning?", "Henry Manning"),
              ElementsAre("The position of Henry Manning is", "Henry Manning's position is"));
  EXPECT_THAT(RewordQuestion("Which family does Epaspidoceras belong to?", "Epaspidoceras"),
              ElementsAre("Epaspidoceras belongs to the family", "Epaspidoceras is a member of the family"));
  EXPECT_THAT(RewordQuestion("What is the date of birth for Ann Lee?", "Ann Lee"),
              ElementsAre("The date of birth for Ann Lee is", "Ann Lee's date of birth is"));
  EXPECT_THAT(RewordQuestion("The mother of Kyrre Nakkim is whom?", "Kyrre Nakkim"),
              ElementsAre("Kyrre Nakkim's mother is", "The mother of Kyrre Nakkim is"));
  EXPECT_THAT(RewordQuestion("Who designed the Shpitalny Sh-37?", "Shpitalny Sh-37"),
              ElementsAre("Shpitalny Sh-37 was designed by", "The one who designed Shpitalny Sh-37 is"));
  EXPECT_THAT(RewordQuestion("In which war did Joseph Breck fight?", "Joseph Breck"),
              ElementsAre("Joseph Breck took part in", "The war Joseph Breck fought in was"));
  EXPECT_THAT(RewordQuestion("What state is  New Windsor located?", "New Windsor"),
              ElementsAre("New Windsor is located in", "The state where New Windsor is located is"));
  // WikiCF's cloze prompts.
  EXPECT_THAT(RewordQuestion("The name of the mother of Leonardo DiCaprio is", "Leonardo DiCaprio"),
              ElementsAre("Leonardo DiCaprio's mother is"));
  EXPECT_THAT(RewordQuestion("Big Mouth is followed by", "Big Mouth"),
              ElementsAre("Big Mouth is succeeded by", "The successor of Big Mouth is"));
  // The subject is kept verbatim, UTF-8 included; the match ignores case.
  EXPECT_THAT(RewordQuestion("WHAT VOICE TYPE IS Nermin Čeliković?", "Nermin Čeliković"),
              ElementsAre("The VOICE type of Nermin Čeliković is", "Nermin Čeliković's VOICE type is"));
}

TEST(RewordingTest, NoRuleNoSubjectNoRewording) {
  EXPECT_THAT(RewordQuestion("Who sang Zebra?", "Zebra"), IsEmpty());           // no rule for this template
  EXPECT_THAT(RewordQuestion("What is the position of X?", ""), IsEmpty());     // no subject
  EXPECT_THAT(RewordQuestion("What is the position of X?", "Y"), IsEmpty());    // subject not in the question
  // A past-tense verb only: "When did X occur" has no "was <participle>" form.
  EXPECT_THAT(RewordQuestion("When did Battle of X occurr?", "Battle of X"), IsEmpty());
}

TEST(RewordingTest, UsableParaphrasesKeepsNumberedItemsAboutTheSubject) {
  const std::vector<std::string> items = {
      "1. Who is A's mother?",         "2) A's mother is called?",
      "Note: A is short.",             // not numbered
      "3. [A] is the child of",        // a placeholder
      "4. Who is Alias's mother?",     // the subject under another name: an alias, not a rewording
      "5. Who is A's mother?",         // a repeat
      "6. The name of the mother of A is",  // the question itself
      "7.  Mother of A, who?  ",
  };
  EXPECT_THAT(UsableParaphrases(items, "The name of the mother of A is", "A"),
              ElementsAre("Who is A's mother?", "A's mother is called?", "Mother of A, who?"));
  EXPECT_THAT(UsableParaphrases(items, "q", ""), IsEmpty());
}

// A ZsRE-format dataset: six "position" records (one repeats an edited subject), four "family" records
// (one repeats an edited subject), one record whose template nobody shares, and two records whose `loc`
// is a scored prompt of the stream.
std::string ZsreText() {
  json recs = json::array();
  const auto add = [&](const std::string& q, const std::string& s, const std::string& alt, const std::string& truth,
                       const std::string& loc) {
    recs.push_back({{"src", q}, {"alt", alt}, {"answers", {truth}}, {"rephrase", "Rephrased: " + q}, {"loc", loc},
                    {"loc_ans", "x"}, {"subject", s}});
  };
  add("What is the position of P0?", "P0", "pope", "bishop0", "nq question: l0");          // 0 edited
  add("Which family does F0 belong to?", "F0", "Noctuidae", "Lamiinae0", "nq question: l1");  // 1 edited
  add("Who sang Zebra?", "Zebra", "Ann", "Bea", "nq question: l2");                          // 2 edited
  add("What is the position of P1?", "P1", "pope", "bishop1", "nq question: l3");            // 3
  add("What is the position of P2?", "P2", "pope", "bishop2", "nq question: l4");            // 4
  add("Which family does F1 belong to?", "F1", "Noctuidae", "Lamiinae1", "nq question: l5"); // 5
  // 6 and 9: same template and an edited subject, worded apart from the edited question only by
  // punctuation inside it (the same relation key, another prompt): the subject alone excludes them.
  add("What is the position of: P0?", "P0", "cardinal", "deacon", "nq question: l6");        // 6 edited subject
  add("What is the position of P3?", "P3", "pope", "bishop3", "nq question: l7");            // 7
  add("Which family does F2 belong to?", "F2", "Noctuidae", "Lamiinae2", "nq question: l8"); // 8
  add("Which family does F0 belong-to?", "F0", "Arctiinae", "Lamiinae9", "nq question: l9"); // 9 edited subject
  add("Who wrote W1?", "W1", "Carl", "Dora", "What is the position of P0?");  // 10: loc = an edited question
  add("Who wrote W2?", "W2", "Carl", "Dora", "The position of P0 is");        // 11: loc = a scored rewording
  add("Who wrote W3?", "W3", "Carl", "Dora", "nq question: l12");             // 12
  return recs.dump();
}

std::set<std::string> Prompts(const std::vector<PromptAnswer>& list) {
  std::set<std::string> out;
  for (const PromptAnswer& p : list) out.insert(p.prompt);
  return out;
}

TEST(ScopeChecksTest, ZsreHardLocComesFromOtherNeverEditedSubjectsOfTheSameTemplate) {
  auto ds = ParseDataset(ZsreText(), "z.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok()) << ds.status();
  for (uint64_t seed : {0, 1, 2, 3, 4, 5}) {
    SCOPED_TRACE(seed);
    BuildOptions opt;
    opt.questions = 3;
    opt.answers = 2;
    opt.seed = seed;
    auto s = BuildStream(*ds, opt);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_EQ(s->edits.size(), 6u);
    const StreamEdit& p0 = s->edits[3];  // the final edits (round 2)
    const StreamEdit& f0 = s->edits[4];
    const StreamEdit& z = s->edits[5];
    ASSERT_EQ(p0.qid, "0");
    // Records 3, 4, 7 qualify for P0 (6 repeats the edited subject P0); two are drawn, with their true answers.
    ASSERT_EQ(p0.hard_loc.size(), 2u);
    const std::map<std::string, std::string> position = {{"What is the position of P1?", "bishop1"},
                                                         {"What is the position of P2?", "bishop2"},
                                                         {"What is the position of P3?", "bishop3"}};
    for (const PromptAnswer& h : p0.hard_loc) {
      ASSERT_TRUE(position.count(h.prompt)) << h.prompt;
      EXPECT_EQ(h.answer, position.at(h.prompt));
    }
    EXPECT_NE(p0.hard_loc[0].prompt, p0.hard_loc[1].prompt);
    // Only records 5 and 8 qualify for F0 (9 repeats the subject F0).
    EXPECT_EQ(Prompts(f0.hard_loc),
              (std::set<std::string>{"Which family does F1 belong to?", "Which family does F2 belong to?"}));
    EXPECT_THAT(z.hard_loc, IsEmpty());  // nobody shares "who sang <s>"
    // Rewordings by rule; ZsRE has no paraphrase list, so no paraphrase hints.
    EXPECT_THAT(p0.reworded, ElementsAre("The position of P0 is", "P0's position is"));
    EXPECT_THAT(f0.reworded, ElementsAre("F0 belongs to the family", "F0 is a member of the family"));
    EXPECT_THAT(z.reworded, IsEmpty());
    for (const StreamEdit& e : s->edits) {
      EXPECT_THAT(e.paraphrases, IsEmpty());
      EXPECT_THAT(e.rel_spec, IsEmpty());
      EXPECT_THAT(e.aliases, IsEmpty());
    }
    // Hints: the loc of a record that is neither edited, nor a hard_loc source, nor about an edited
    // subject, nor scored (10's loc is an edited question, 11's a scored rewording).
    std::set<std::string> allowed = {"nq question: l12"};
    for (int i : {3, 4, 5, 7, 8}) {
      const DatasetRecord& r = ds->records[static_cast<size_t>(i)];
      if (!Prompts(p0.hard_loc).count(r.question) && !Prompts(f0.hard_loc).count(r.question)) allowed.insert(r.loc);
    }
    std::map<std::string, std::vector<std::string>> hints_of;
    for (const StreamEdit& e : s->edits) {
      ASSERT_EQ(e.hint_unrelated.size(), 1u);
      EXPECT_TRUE(allowed.count(e.hint_unrelated[0])) << e.hint_unrelated[0];
      hints_of[e.qid].push_back(e.hint_unrelated[0]);
    }
    for (const auto& [qid, hints] : hints_of) EXPECT_EQ(hints[0], hints[1]) << qid;  // one hint per question
  }
}

TEST(ScopeChecksTest, SameSeedSameChecks) {
  auto ds = ParseDataset(ZsreText(), "z.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok());
  BuildOptions opt;
  opt.questions = 3;
  opt.seed = 9;
  auto a = BuildStream(*ds, opt);
  auto b = BuildStream(*ds, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->edits.size(); ++i) EXPECT_EQ(SerializeStreamEdit(a->edits[i]), SerializeStreamEdit(b->edits[i]));
  // Over seeds, every qualifying hard_loc record of P0 is drawn at least once.
  std::set<std::string> drawn;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    opt.seed = seed;
    auto s = BuildStream(*ds, opt);
    ASSERT_TRUE(s.ok());
    for (const PromptAnswer& h : s->edits[0].hard_loc) drawn.insert(h.prompt);
  }
  EXPECT_EQ(drawn.size(), 3u);
}

// WikiCF's nested ground truth: [[alias, alias, ...]].
json Aliases(std::vector<std::string> names) { return json::array({json(names)}); }

// A KnowEdit/WikiCF-format dataset: "mother" records with LLM paraphrase lists, aliases and other relations.
std::string WikiText() {
  json recs = json::array();
  const auto add = [&](const std::string& s, json generate, json aliases, json rel_spec) {
    json r = {{"prompt", "The name of the mother of " + s + " is"},
              {"target_new", "New" + s},
              {"subject", s},
              {"ground_truth", "Mom" + s},
              {"portability", {{"Subject_Aliasing", aliases}}},
              {"locality", {{"Relation_Specificity", rel_spec}}}};
    if (!generate.is_null()) r["generate_prompt"] = generate;
    recs.push_back(r);
  };
  add("A",
      {"1. Who is A's mother?", "2. A's mother is called?", "3. Name the mother of A.", "4. What is the name of A's mom?",
       "5. Who gave birth to A?", "6) Mother of A, who?", "Note: A is short.", "7. [A] placeholder",
       "8. Who is Alias's mother?"},
      {{{"prompt", "The name of the mother of A2 is"}, {"ground_truth", Aliases({"NewA", "N.A."})}},
       {{"prompt", "The name of the mother of A3 is"}, {"ground_truth", json::array()}}},  // no answer: left out
      {{{"prompt", "The name of the father of A is"}, {"ground_truth", Aliases({"Carl", "C."})}},
       {{"prompt", "The name of the mother of B is"}, {"ground_truth", Aliases({"MomB"})}},  // an edited question
       {{"prompt", "The gender of A is"}, {"ground_truth", Aliases({"female"})}}});
  add("B", nullptr, json::array(), {{{"prompt", "The gender of B is"}, {"ground_truth", Aliases({"male"})}}});
  for (const char* s : {"C", "D", "E", "F"})
    add(s, nullptr, json::array(),
        {{{"prompt", std::string("The gender of ") + s + " is"}, {"ground_truth", Aliases({"x"})}}});
  return recs.dump();
}

TEST(ScopeChecksTest, KnowEditRewordingsParaphrasesAliasesAndRelationSpecificity) {
  auto ds = ParseDataset(WikiText(), "w.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_TRUE(ds->records[0].rewordings_from_dataset);
  EXPECT_FALSE(ds->records[1].rewordings_from_dataset);
  const std::set<std::string> usable = {"Who is A's mother?", "A's mother is called?", "Name the mother of A.",
                                        "What is the name of A's mom?", "Who gave birth to A?", "Mother of A, who?"};
  std::set<std::string> ever_reworded;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    SCOPED_TRACE(seed);
    BuildOptions opt;
    opt.questions = 2;
    opt.seed = seed;
    auto s = BuildStream(*ds, opt);
    ASSERT_TRUE(s.ok()) << s.status();
    const StreamEdit& a = s->edits[0];
    const StreamEdit& b = s->edits[1];
    // Three rewordings are scored, two more are sent as hints, all from the usable part of the list.
    ASSERT_EQ(a.reworded.size(), 3u);
    ASSERT_EQ(a.paraphrases.size(), 2u);
    std::set<std::string> all(a.reworded.begin(), a.reworded.end());
    all.insert(a.paraphrases.begin(), a.paraphrases.end());
    EXPECT_EQ(all.size(), 5u);  // disjoint
    for (const std::string& p : all) EXPECT_TRUE(usable.count(p)) << p;
    ever_reworded.insert(a.reworded.begin(), a.reworded.end());
    // B has no list: the cloze rule; no hints from rules.
    EXPECT_THAT(b.reworded, ElementsAre("B's mother is"));
    EXPECT_THAT(b.paraphrases, IsEmpty());
    // Aliases with an answer (first alias); rel_spec without the prompt that is an edited question.
    EXPECT_THAT(a.aliases, ElementsAre(PromptAnswer{"The name of the mother of A2 is", "NewA"}));
    EXPECT_THAT(a.rel_spec, ElementsAre(PromptAnswer{"The name of the father of A is", "Carl"},
                                        PromptAnswer{"The gender of A is", "female"}));
    EXPECT_THAT(b.rel_spec, ElementsAre(PromptAnswer{"The gender of B is", "male"}));
    // Gen. and Loc. keep their definitions: the first alias and the first Relation_Specificity entry.
    EXPECT_EQ(a.rephrase, "The name of the mother of A2 is");
    EXPECT_EQ(a.loc, "The name of the father of A is");
    // hard_loc: two of C..F each; hints: the gender prompt of a record no hard_loc came from.
    std::set<std::string> sources;
    for (const StreamEdit* e : {&a, &b}) {
      ASSERT_EQ(e->hard_loc.size(), 2u);
      for (const PromptAnswer& h : e->hard_loc) {
        const std::string subject = h.prompt.substr(std::string("The name of the mother of ").size(), 1);
        EXPECT_THAT(subject, ::testing::AnyOf("C", "D", "E", "F"));
        EXPECT_EQ(h.answer, "Mom" + subject);
        sources.insert(subject);
      }
    }
    for (const StreamEdit* e : {&a, &b}) {
      // When the hard_loc draws used all of C..F, no record is left for hints.
      ASSERT_EQ(e->hint_unrelated.size(), sources.size() < 4 ? 1u : 0u);
      for (const std::string& h : e->hint_unrelated) {
        const std::string subject = h.substr(std::string("The gender of ").size(), 1);
        EXPECT_THAT(subject, ::testing::AnyOf("C", "D", "E", "F"));
        EXPECT_FALSE(sources.count(subject)) << h;
      }
    }
  }
  EXPECT_EQ(ever_reworded.size(), usable.size());  // the draw reaches every usable item
}

TEST(ScopeChecksTest, EmptyHintPoolGivesNoHints) {
  // Every record outside the stream is a hard_loc source: no record is left for hints.
  json recs = json::array();
  for (const char* s : {"A", "B", "C"})
    recs.push_back({{"src", std::string("What is the position of ") + s + "?"}, {"alt", "pope"},
                    {"answers", {"bishop"}}, {"rephrase", ""}, {"loc", std::string("nq question: ") + s},
                    {"loc_ans", "x"}, {"subject", s}});
  auto ds = ParseDataset(recs.dump(), "z.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok());
  BuildOptions opt;
  opt.questions = 1;
  auto s = BuildStream(*ds, opt);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Prompts(s->edits[0].hard_loc),
            (std::set<std::string>{"What is the position of B?", "What is the position of C?"}));
  EXPECT_THAT(s->edits[0].hint_unrelated, IsEmpty());
}

}  // namespace
}  // namespace moke::bench
