// The stream builder on the shared ZsRE and WikiCF files (skipped when ../shared is absent).
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "client/bench/answer_type.h"
#include "client/bench/stream.h"
#include "client/bench/stream_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/paths.h"

namespace moke::bench {
namespace {

constexpr char kZsre[] = "data/zsre/zsre_mend_eval_portability_gpt4.json";
constexpr char kWikiTest[] = "data/wikicf/test_cf.json";
constexpr char kWikiTrain[] = "data/wikicf/train_cf.json";
constexpr char kWikiGenerate[] = "data/wikicf/test_cf-generate-10.jsonl";

const Dataset& Zsre() {
  static const Dataset* ds = [] {
    auto d = LoadDataset(::moke::testing::SharedDir() + "/" + kZsre, DatasetFormat::kAuto);
    EXPECT_TRUE(d.ok()) << d.status();
    return new Dataset(d.ok() ? *std::move(d) : Dataset{});
  }();
  return *ds;
}

std::string Serialize(const EditStream& s) {
  std::string out;
  for (const StreamEdit& e : s.edits) out += SerializeStreamEdit(e) + "\n";
  return out;
}

TEST(StreamBuilderTest, ZsreIsReadInFull) {
  MOKE_REQUIRE_SHARED(kZsre);
  const Dataset& ds = Zsre();
  EXPECT_EQ(ds.format, DatasetFormat::kZsreMend);
  ASSERT_EQ(ds.records.size(), 1037u);
  EXPECT_EQ(ds.records[0].question, "When was the inception of IAAF Combined Events Challenge?");
  EXPECT_EQ(ds.records[0].target, "2006");
  EXPECT_EQ(ds.records[0].true_answers, std::vector<std::string>{"1998"});
  EXPECT_EQ(ds.records[0].type, AnswerType::kYear);
  EXPECT_EQ(ds.records[0].loc_ans, "The String");
}

TEST(StreamBuilderTest, LkeIsTheFirstTRecordsInOrder) {
  MOKE_REQUIRE_SHARED(kZsre);
  BuildOptions opt;
  opt.questions = 50;
  opt.answers = 1;
  auto s = BuildStream(Zsre(), opt);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->edits.size(), 50u);
  // Every record is edited in its own words with its own new target (what WISE's LKE runs edit); a record
  // that restates an earlier record's fact is that fact's edit (its qid), and the fact's last edit is final.
  // Counted independently from the file (same subject and a true answer in common): 13 of the first 50
  // records restate an earlier one, the first being record 7 (record 6's fact).
  std::set<std::string> qids;
  int restating = 0;
  for (int i = 0; i < 50; ++i) {
    const StreamEdit& e = s->edits[static_cast<size_t>(i)];
    const DatasetRecord& r = Zsre().records[static_cast<size_t>(i)];
    EXPECT_EQ(e.step, i + 1);
    EXPECT_EQ(e.question, r.question);
    EXPECT_EQ(e.answer, r.target);
    const DatasetRecord& first = Zsre().records[std::stoul(e.qid)];
    EXPECT_EQ(e.rephrase, first.rephrase);
    if (e.qid != std::to_string(i)) {
      ++restating;
      EXPECT_LT(std::stoul(e.qid), static_cast<size_t>(i));
      EXPECT_EQ(NormalizeAnswer(first.subject), NormalizeAnswer(r.subject));
    } else {
      EXPECT_EQ(e.loc, r.loc);
    }
    bool later = false;
    for (int k = i + 1; k < 50; ++k) later |= s->edits[static_cast<size_t>(k)].qid == e.qid;
    EXPECT_EQ(e.final, !later) << i;
    qids.insert(e.qid);
  }
  EXPECT_EQ(restating, 13);
  EXPECT_EQ(qids.size(), 37u);
  EXPECT_EQ(s->edits[7].qid, "6");
}

// A fact asked in two wordings with two new targets (as ZsRE MEND lists "Which corporation created USS
// Leedstown (APA-56)?" and "What company made USS Leedstown (APA-56)?", both "Bethlehem Steel") is edited
// once with --one-per-fact, the other wording scored as its rewording; without it, the other wording is a
// re-edit of the same fact in its own words. Needs no shared data.
TEST(StreamBuilderTest, ARestatedFactIsEditedOnceAndItsWordingsAreRewordings) {
  const std::string json = R"([
    {"src": "Which corporation created Ship One?", "alt": "Acme", "answers": ["Bethlehem Steel"],
     "rephrase": "Which company built Ship One?", "loc": "nq question: a", "loc_ans": "x", "subject": "Ship One"},
    {"src": "Where was Ann Lee born?", "alt": "Paris", "answers": ["Leeds"],
     "rephrase": "What is the birthplace of Ann Lee?", "loc": "nq question: b", "loc_ans": "y", "subject": "Ann Lee"},
    {"src": "What company made Ship One?", "alt": "Globex", "answers": ["bethlehem steel"],
     "rephrase": "Ship One's manufacturer was who?", "loc": "nq question: c", "loc_ans": "z", "subject": "Ship One"},
    {"src": "When was Ship One launched?", "alt": "1950", "answers": ["1943"],
     "rephrase": "In what year was Ship One launched?", "loc": "nq question: d", "loc_ans": "w", "subject": "Ship One"},
    {"src": "Who built Ship One?", "alt": "Initech", "answers": ["Bethlehem Steel"],
     "rephrase": "Which company built Ship One?", "loc": "nq question: e", "loc_ans": "v", "subject": "Ship One"}
  ])";
  auto ds = ParseDataset(json, "mini.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok()) << ds.status();
  std::vector<std::vector<size_t>> same;
  auto picked = SelectFacts(*ds, 0, 3, &same);
  ASSERT_TRUE(picked.ok()) << picked.status();
  // Record 2 restates record 0 (same subject, same true answer up to case); record 3 is another fact of
  // the same subject; record 4, past the last one picked, restates record 0 too.
  EXPECT_EQ(*picked, (std::vector<size_t>{0, 1, 3}));
  EXPECT_EQ(same, (std::vector<std::vector<size_t>>{{2, 4}, {}, {}}));

  BuildOptions opt;
  opt.questions = 3;
  opt.one_per_fact = true;
  auto s = BuildStream(*ds, opt);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->edits.size(), 3u);
  EXPECT_EQ(s->edits[0].qid, "0");
  EXPECT_EQ(s->edits[1].qid, "1");
  EXPECT_EQ(s->edits[2].qid, "3");
  const std::vector<std::string>& w = s->edits[0].reworded;
  for (const char* restated : {"What company made Ship One?", "Ship One's manufacturer was who?", "Who built Ship One?"})
    EXPECT_EQ(std::count(w.begin(), w.end(), restated), 1) << restated;
  // Record 4's rephrase is record 0's own: scored once, as Gen.
  EXPECT_EQ(std::count(w.begin(), w.end(), "Which company built Ship One?"), 0);
  for (const std::string& p : s->edits[2].reworded) EXPECT_EQ(p.find("company"), std::string::npos) << p;

  opt.questions = 4;  // three distinct facts only
  auto too_many = BuildStream(*ds, opt);
  ASSERT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(too_many.status().message()).find("3 distinct facts"), std::string::npos) << too_many.status();
  // Without it every record is edited: record 2 re-edits record 0's fact in its own words, so both are
  // qid 0 and the fact is evaluated on record 2's question and answer; record 0's question becomes a
  // rewording that must get that answer, and record 2's own question is not a rewording (it is Rel.).
  opt.one_per_fact = false;
  auto all = BuildStream(*ds, opt);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->edits.size(), 4u);
  std::vector<std::string> qids, questions, answers;
  std::vector<bool> finals;
  for (const StreamEdit& e : all->edits) {
    qids.push_back(e.qid);
    questions.push_back(e.question);
    answers.push_back(e.answer);
    finals.push_back(e.final);
  }
  EXPECT_EQ(qids, (std::vector<std::string>{"0", "1", "0", "3"}));
  EXPECT_EQ(questions[2], "What company made Ship One?");
  EXPECT_EQ(answers, (std::vector<std::string>{"Acme", "Paris", "Globex", "1950"}));  // each record's own target
  EXPECT_EQ(finals, (std::vector<bool>{false, true, true, true}));
  const std::vector<std::string>& rw = all->edits[2].reworded;
  EXPECT_EQ(rw, all->edits[0].reworded);
  EXPECT_EQ(std::count(rw.begin(), rw.end(), "Which corporation created Ship One?"), 1);
  EXPECT_EQ(std::count(rw.begin(), rw.end(), "What company made Ship One?"), 0);
  EXPECT_EQ(std::count(rw.begin(), rw.end(), "Ship One's manufacturer was who?"), 1);
  EXPECT_EQ(std::count(rw.begin(), rw.end(), "Who built Ship One?"), 1);  // record 4, past the range
  EXPECT_EQ(all->edits[2].rephrase, "Which company built Ship One?");  // the fact's first record's (Gen.)
  auto q = StreamQuestions(*all);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0].num_answers, 2);
  EXPECT_EQ(q[0].final_index, 2u);

  // --reword-reedits: the second round edits each record's rephrase, which is then Rel. (not Gen.), and the
  // question first edited must get the final answer.
  opt.one_per_fact = true;
  opt.questions = 3;
  opt.answers = 2;
  opt.reword_reedits = true;
  auto reword = BuildStream(*ds, opt);
  ASSERT_TRUE(reword.ok()) << reword.status();
  ASSERT_EQ(reword->edits.size(), 6u);
  const StreamEdit& again = reword->edits[3];
  EXPECT_EQ(again.qid, "0");
  EXPECT_EQ(again.question, "Which company built Ship One?");
  EXPECT_EQ(again.subject, "Ship One");
  EXPECT_TRUE(again.final);
  EXPECT_FALSE(reword->edits[0].final);
  EXPECT_EQ(again.rephrase, "");
  ASSERT_FALSE(again.reworded.empty());
  EXPECT_EQ(again.reworded[0], "Which corporation created Ship One?");
  EXPECT_EQ(std::count(again.reworded.begin(), again.reworded.end(), "Which company built Ship One?"), 0);
  EXPECT_EQ(reword->edits[0].reworded, again.reworded);
  opt.answers = 1;
  EXPECT_EQ(BuildStream(*ds, opt).status().code(), absl::StatusCode::kInvalidArgument) << "nothing to reword";
}

TEST(StreamBuilderTest, SlkeHasPDistinctAnswersNoneTheTrueAnswer) {
  MOKE_REQUIRE_SHARED(kZsre);
  constexpr int T = 125, P = 8;
  BuildOptions opt;
  opt.questions = T;
  opt.one_per_fact = true;  // qid = the record whose answers these are
  opt.answers = P;
  opt.seed = 42;
  auto s = BuildStream(Zsre(), opt);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->edits.size(), static_cast<size_t>(T * P));
  std::map<std::string, std::vector<const StreamEdit*>> by_q;
  for (size_t i = 0; i < s->edits.size(); ++i) {
    const StreamEdit& e = s->edits[i];
    // P rounds over the T questions, in record order.
    EXPECT_EQ(e.qid, s->edits[i % T].qid);
    if (i > 0 && i < static_cast<size_t>(T)) EXPECT_LT(std::stoul(s->edits[i - 1].qid), std::stoul(e.qid));
    EXPECT_EQ(e.final, i >= static_cast<size_t>(T * (P - 1)));
    by_q[e.qid].push_back(&e);
  }
  ASSERT_EQ(by_q.size(), static_cast<size_t>(T));
  int alternatives = 0;
  for (const auto& [qid, edits] : by_q) {
    const DatasetRecord& r = Zsre().records[std::stoul(qid)];
    ASSERT_EQ(edits.size(), static_cast<size_t>(P));
    EXPECT_EQ(edits[0]->answer, r.target);
    std::set<std::string> distinct;
    for (const StreamEdit* e : edits) distinct.insert(NormalizeAnswer(e->answer));
    EXPECT_EQ(distinct.size(), static_cast<size_t>(P)) << "qid " << qid;
    for (size_t k = 1; k < edits.size(); ++k) {
      for (const std::string& t : r.true_answers) EXPECT_NE(NormalizeAnswer(edits[k]->answer), NormalizeAnswer(t));
      ++alternatives;
    }
    // The evaluated (final) answer is never the true answer.
    for (const std::string& t : r.true_answers) EXPECT_NE(NormalizeAnswer(edits.back()->answer), NormalizeAnswer(t));
  }
  EXPECT_EQ(alternatives, T * (P - 1));
}

TEST(StreamBuilderTest, AlternativesShareTheAnswerType) {
  MOKE_REQUIRE_SHARED(kZsre);
  const Dataset& ds = Zsre();
  std::map<std::string, AnswerType> type_of_target;
  for (const DatasetRecord& r : ds.records) type_of_target.emplace(NormalizeAnswer(r.target), r.type);
  BuildOptions opt;
  opt.questions = 100;
  opt.one_per_fact = true;  // qid = the record whose answers these are
  opt.answers = 4;
  opt.seed = 7;
  auto s = BuildStream(ds, opt);
  ASSERT_TRUE(s.ok()) << s.status();
  int checked = 0, same = 0;
  for (const StreamEdit& e : s->edits) {
    const DatasetRecord& r = ds.records[std::stoul(e.qid)];
    if (e.answer == r.target) continue;
    ++checked;
    // Some texts are targets of several records with different types; count a match on any of them.
    bool match = false;
    for (const DatasetRecord& o : ds.records)
      if (NormalizeAnswer(o.target) == NormalizeAnswer(e.answer) && o.type == r.type) match = true;
    same += match;
  }
  EXPECT_EQ(checked, 300);
  EXPECT_EQ(same, checked);  // every type pool is large enough in ZsRE
  // The year question (record 0) gets years.
  for (const StreamEdit& e : s->edits)
    if (e.qid == "0") EXPECT_EQ(ClassifyAnswer(ds.records[0].question, ds.records[0].subject, e.answer), AnswerType::kYear) << e.answer;
}

TEST(StreamBuilderTest, SameSeedSameStreamDifferentSeedDifferentStream) {
  MOKE_REQUIRE_SHARED(kZsre);
  BuildOptions opt;
  opt.questions = 30;
  opt.one_per_fact = true;  // qid = the record whose answers these are
  opt.answers = 4;
  opt.seed = 1;
  auto a = BuildStream(Zsre(), opt);
  auto b = BuildStream(Zsre(), opt);
  opt.seed = 2;
  auto c = BuildStream(Zsre(), opt);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(Serialize(*a), Serialize(*b));
  EXPECT_NE(Serialize(*a), Serialize(*c));
  // A question's answers do not depend on T: the 10-question stream is the 30-question one's prefix per question.
  opt.seed = 1;
  opt.questions = 10;
  auto small = BuildStream(Zsre(), opt);
  ASSERT_TRUE(small.ok());
  std::map<std::string, size_t> position;  // a question's place in a round of the 30-question stream
  for (size_t i = 0; i < 30; ++i) position[a->edits[i].qid] = i;
  for (const StreamEdit& e : small->edits) {
    const size_t round = static_cast<size_t>((e.step - 1) / 10);
    ASSERT_TRUE(position.count(e.qid)) << e.qid;
    EXPECT_EQ(e.answer, a->edits[round * 30 + position[e.qid]].answer);
  }
}

TEST(StreamBuilderTest, WrittenStreamParsesBack) {
  MOKE_REQUIRE_SHARED(kZsre);
  BuildOptions opt;
  opt.questions = 10;
  opt.one_per_fact = true;  // qid = the record whose answers these are
  opt.answers = 3;
  opt.name = "zsre-10x3";
  auto s = BuildStream(Zsre(), opt);
  ASSERT_TRUE(s.ok());
  const std::string path = (std::filesystem::temp_directory_path() / "moke_stream_builder_test.jsonl").string();
  ASSERT_TRUE(WriteStreamFile(*s, path).ok());
  auto back = ReadStreamFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, "moke_stream_builder_test");
  EXPECT_EQ(Serialize(*back), Serialize(*s));
  EXPECT_EQ(StreamQuestions(*back).size(), 10u);
  std::filesystem::remove(path);
}

TEST(StreamBuilderTest, WikiCfTestAndTrain) {
  MOKE_REQUIRE_SHARED(kWikiTest);
  MOKE_REQUIRE_SHARED(kWikiTrain);
  for (const char* rel : {kWikiTest, kWikiTrain}) {
    auto ds = LoadDataset(::moke::testing::SharedDir() + "/" + rel, DatasetFormat::kAuto);
    ASSERT_TRUE(ds.ok()) << ds.status();
    EXPECT_EQ(ds->format, DatasetFormat::kKnowEdit);
    BuildOptions opt;
    opt.questions = 40;
    opt.answers = 4;
    opt.seed = 3;
    auto s = BuildStream(*ds, opt);
    ASSERT_TRUE(s.ok()) << rel << ": " << s.status();
    EXPECT_EQ(s->edits.size(), 160u);
    int with_rephrase = 0, with_loc = 0;
    for (const StreamEdit& e : s->edits) {
      const DatasetRecord& r = ds->records[std::stoul(e.qid)];
      for (const std::string& t : r.true_answers)
        if (e.answer != r.target) EXPECT_NE(NormalizeAnswer(e.answer), NormalizeAnswer(t));
      with_rephrase += !e.rephrase.empty();
      with_loc += !e.loc.empty();
      EXPECT_EQ(e.loc.empty(), e.loc_ans.empty());
    }
    EXPECT_GT(with_rephrase, 0) << rel;
    EXPECT_GT(with_loc, 0) << rel;
  }
  auto ds = LoadDataset(::moke::testing::SharedDir() + "/" + kWikiTest, DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->records[0].target, "Syria");
  EXPECT_EQ(ds->records[0].rephrase, "The name of the country of citizenship of Di Caprio is");
  EXPECT_EQ(ds->records[0].loc, "The name of the mother of Leonardo DiCaprio is");
  EXPECT_EQ(ds->records[0].loc_ans, "Irmelin DiCaprio");
  EXPECT_EQ(ds->records[0].type, AnswerType::kPlace);
}

// The scope checks of a built stream against the dataset it came from: hard_loc only from records outside
// the edited set, of the same relation, about subjects never edited; hints only from records that are
// neither edited nor hard_loc sources; rewordings past kRewordedPerQuestion only the wordings of records
// that restate the fact. Returns the number of questions with hard_loc and with reworded.
std::pair<int, int> CheckScope(const Dataset& ds, const EditStream& s) {
  std::map<std::string, std::vector<size_t>> by_question, by_loc;
  for (size_t i = 0; i < ds.records.size(); ++i) {
    by_question[ds.records[i].question].push_back(i);
    by_loc[ds.records[i].loc].push_back(i);
  }
  std::set<std::string> edited_subjects;
  for (const StreamEdit& e : s.edits) edited_subjects.insert(NormalizeAnswer(ds.records[std::stoul(e.qid)].subject));
  // Records about an edited subject are edited or restate an edited fact.
  std::set<size_t> edited;
  for (size_t i = 0; i < ds.records.size(); ++i)
    if (edited_subjects.count(NormalizeAnswer(ds.records[i].subject))) edited.insert(i);
  std::set<size_t> sources;
  int with_hard_loc = 0, with_reworded = 0;
  for (const StreamQuestion& q : StreamQuestions(s)) {
    const StreamEdit& e = s.edits[q.final_index];
    const DatasetRecord& r = ds.records[std::stoul(e.qid)];
    with_hard_loc += !e.hard_loc.empty();
    with_reworded += !e.reworded.empty();
    EXPECT_LE(e.hard_loc.size(), kHardLocPerQuestion);
    for (size_t k = kRewordedPerQuestion; k < e.reworded.size(); ++k) {
      bool restated = false;  // another record's question or rephrase, same subject, a true answer in common
      for (const DatasetRecord& o : ds.records) {
        if (o.index == r.index || (o.question != e.reworded[k] && o.rephrase != e.reworded[k])) continue;
        for (const std::string& a : o.true_answers)
          restated |= NormalizeAnswer(o.subject) == NormalizeAnswer(r.subject) &&
                      std::count(r.true_answers.begin(), r.true_answers.end(), a) > 0;
      }
      EXPECT_TRUE(restated) << "qid " << e.qid << ": " << e.reworded[k];
    }
    for (const PromptAnswer& h : e.hard_loc) {
      // Some record outside the stream, of the same relation, asks it, with that true answer; no record
      // asking it is about an edited subject.
      bool found = false;
      for (size_t i : by_question[h.prompt]) {
        const DatasetRecord& o = ds.records[i];
        EXPECT_FALSE(edited_subjects.count(NormalizeAnswer(o.subject))) << h.prompt;
        if (!edited.count(i) && o.relation == r.relation && o.true_answers[0] == h.answer) {
          found = true;
          sources.insert(i);
        }
      }
      EXPECT_TRUE(found) << "qid " << e.qid << ": " << h.prompt;
    }
  }
  for (const StreamEdit& e : s.edits) {
    for (const std::string& h : e.hint_unrelated) {
      EXPECT_TRUE(by_loc.count(h)) << h;
      bool allowed = false;
      for (size_t i : by_loc[h]) allowed |= !edited.count(i) && !sources.count(i);
      EXPECT_TRUE(allowed) << h;
    }
  }
  return {with_hard_loc, with_reworded};
}

TEST(StreamBuilderTest, ZsreScopeChecks) {
  MOKE_REQUIRE_SHARED(kZsre);
  BuildOptions opt;
  opt.questions = 100;
  opt.one_per_fact = true;
  auto s = BuildStream(Zsre(), opt);
  ASSERT_TRUE(s.ok()) << s.status();
  const auto [with_hard_loc, with_reworded] = CheckScope(Zsre(), *s);
  // Measured on the shared file (docs/streams.md): 73 of the first 100 distinct facts share their template
  // with a record outside them; 66 have rewordings (the rules', or a record restating the fact).
  EXPECT_EQ(with_hard_loc, 73);
  EXPECT_EQ(with_reworded, 66);
  for (const StreamEdit& e : s->edits) {
    EXPECT_TRUE(e.paraphrases.empty());  // ZsRE has nothing to send but the scored rephrase
    EXPECT_EQ(e.hint_unrelated.size(), 1u);
    EXPECT_TRUE(e.rel_spec.empty() && e.aliases.empty());  // the MEND file has neither
  }
}

TEST(StreamBuilderTest, WikiCfScopeChecksFromGenerate10) {
  MOKE_REQUIRE_SHARED(kWikiGenerate);
  auto ds = LoadDataset(::moke::testing::SharedDir() + "/" + kWikiGenerate, DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->records.size(), 885u);
  BuildOptions opt;
  opt.questions = 25;
  opt.answers = 4;
  opt.seed = 1;
  auto s = BuildStream(*ds, opt);
  ASSERT_TRUE(s.ok()) << s.status();
  const auto [with_hard_loc, with_reworded] = CheckScope(*ds, *s);
  EXPECT_EQ(with_hard_loc, 25);
  EXPECT_EQ(with_reworded, 25);
  for (const StreamQuestion& q : StreamQuestions(*s)) {
    const StreamEdit& e = s->edits[q.final_index];
    const DatasetRecord& r = ds->records[std::stoul(e.qid)];
    if (r.rewordings_from_dataset) {  // rewordings and paraphrase hints: disjoint parts of generate_prompt
      const std::set<std::string> own(r.rewordings.begin(), r.rewordings.end());
      for (const std::string& p : e.reworded) EXPECT_TRUE(own.count(p)) << p;
      for (const std::string& p : e.paraphrases) {
        EXPECT_TRUE(own.count(p)) << p;
        EXPECT_EQ(std::count(e.reworded.begin(), e.reworded.end(), p), 0) << p;
      }
    }
    // aliases and rel_spec: the record's own entries, in order (rel_spec may skip an edited question).
    ASSERT_LE(e.aliases.size(), r.aliases.size());
    for (size_t k = 0; k < e.aliases.size(); ++k) EXPECT_EQ(e.aliases[k], r.aliases[k]);
    for (const PromptAnswer& p : e.rel_spec)
      EXPECT_NE(std::find(r.rel_spec.begin(), r.rel_spec.end(), p), r.rel_spec.end()) << p.prompt;
  }
  // Loc. never asks an edited fact: in 100 records, WikiCF's first Relation_Specificity prompt is sometimes
  // another record's question ("The name of the mother of Kanye West is"); the builder then takes another.
  opt.questions = 100;
  opt.answers = 1;
  auto lke = BuildStream(*ds, opt);
  ASSERT_TRUE(lke.ok()) << lke.status();
  std::set<std::string> edited;
  for (const StreamEdit& e : lke->edits) edited.insert(e.question);
  int replaced = 0;
  for (const StreamEdit& e : lke->edits) {
    EXPECT_EQ(edited.count(e.loc), 0u) << e.loc;
    const DatasetRecord& r = ds->records[std::stoul(e.qid)];
    replaced += e.loc != r.loc;
  }
  EXPECT_GT(replaced, 0) << "the first 100 records have such a case";
  // Record 0 (DiCaprio): generate_prompt's ten items are usable.
  EXPECT_EQ(ds->records[0].rewordings.size(), 10u);
  EXPECT_EQ(ds->records[0].rewordings[1], "Leonardo DiCaprio holds a passport from which country?");
  EXPECT_EQ(ds->records[0].aliases[0], (PromptAnswer{"The name of the country of citizenship of Di Caprio is", "Syria"}));
  EXPECT_EQ(ds->records[0].rel_spec[2], (PromptAnswer{"The gender of Leonardo DiCaprio is", "male"}));
}

TEST(StreamBuilderTest, WrongFormatAndTooManyQuestionsStop) {
  MOKE_REQUIRE_SHARED(kZsre);
  auto wrong = LoadDataset(::moke::testing::SharedDir() + "/" + kZsre, DatasetFormat::kKnowEdit);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(std::string(wrong.status().message()).find("record 0: missing field \"prompt\""), std::string::npos)
      << wrong.status();
  BuildOptions opt;
  opt.questions = 2000;
  EXPECT_EQ(BuildStream(Zsre(), opt).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moke::bench
