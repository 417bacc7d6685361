// The stream format (parse/validate/serialize), the dataset parser's errors and the answer-type
// classifier. No shared data needed.
#include <string>

#include "client/bench/answer_type.h"
#include "client/bench/stream.h"
#include "client/bench/stream_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moke::bench {
namespace {

using ::testing::HasSubstr;

StreamEdit Edit(int step, const std::string& qid, const std::string& answer, bool final,
               const std::string& question = "Who wrote X?") {
  StreamEdit e;
  e.step = step;
  e.qid = qid;
  e.question = question;
  e.answer = answer;
  e.rephrase = "X was written by whom?";
  e.loc = "nq question: who sang y";
  e.loc_ans = "Z";
  e.subject = "X";
  e.final = final;
  return e;
}

std::string Line(int step, const std::string& qid, const std::string& answer, bool final,
                 const std::string& question = "Who wrote X?") {
  return SerializeStreamEdit(Edit(step, qid, answer, final, question)) + "\n";
}

TEST(StreamFormatTest, ParsesAValidStream) {
  const std::string text = Line(1, "0", "A", false) + Line(2, "1", "B", false, "Who is Y?") + "\n" +
                           Line(3, "0", "C", true) + Line(4, "1", "D", true, "Who is Y?");
  auto s = ParseStream(text, "s.jsonl");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->edits.size(), 4u);
  EXPECT_EQ(s->edits[2].line, 4);  // the blank line counts
  auto q = StreamQuestions(*s);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].qid, "0");
  EXPECT_EQ(s->edits[q[0].final_index].answer, "C");
  EXPECT_EQ(q[1].num_answers, 2);
}

TEST(StreamFormatTest, AFactMayBeReEditedInOtherWords) {
  // The last edit's question is the one evaluated (Rel.); the earlier wording must be a `reworded` prompt
  // if it is to be scored, and nothing else of the fact may differ.
  const std::string text = Line(1, "0", "A", false, "Who wrote X?") + Line(2, "0", "B", true, "Whose work is X?");
  auto s = ParseStream(text, "s.jsonl");
  ASSERT_TRUE(s.ok()) << s.status();
  auto q = StreamQuestions(*s);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].num_answers, 2);
  EXPECT_EQ(s->edits[q[0].final_index].question, "Whose work is X?");
  EXPECT_EQ(s->edits[q[0].final_index].answer, "B");
}

TEST(StreamFormatTest, RoundTripsThroughSerialize) {
  StreamEdit e;
  e.step = 7;
  e.qid = "zsre-3";
  e.question = "Qu\"ote\u00e9 \\ ?";
  e.answer = "Lé\nx";
  e.final = true;
  auto s = ParseStream(SerializeStreamEdit(e), "x");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->edits[0].qid, "zsre-3");
  EXPECT_EQ(s->edits[0].question, e.question);
  EXPECT_EQ(s->edits[0].answer, e.answer);
  EXPECT_THAT(SerializeStreamEdit(e), HasSubstr("{\"step\":7,\"qid\":\"zsre-3\",\"question\":"));
}

TEST(StreamFormatTest, AcceptsCrLfAndIntegerQid) {
  auto s = ParseStream(
      "{\"step\":1,\"qid\":12,\"question\":\"q\",\"answer\":\"a\",\"rephrase\":\"\",\"loc\":\"\",\"loc_ans\":\"\","
      "\"subject\":\"\",\"final\":true,\"extra\":1}\r\n",
      "x");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->edits[0].qid, "12");
}

struct BadCase {
  std::string text;
  std::string expect;  // substring of the error, including the line number
};

TEST(StreamFormatTest, RejectsBadLinesWithLineNumbers) {
  const std::string good1 = Line(1, "0", "A", true);
  const std::vector<BadCase> cases = {
      {good1 + "{\"step\": 2, \"qid\": 1,\n", "bad.jsonl:2: malformed JSON"},
      {good1 + "[1,2]\n", "bad.jsonl:2: expected a JSON object"},
      {good1 + "\n" + "{\"step\":2,\"qid\":1,\"question\":\"q\",\"rephrase\":\"\",\"loc\":\"\",\"loc_ans\":\"\","
                      "\"subject\":\"\",\"final\":true}\n",
       "bad.jsonl:3: missing field \"answer\""},
      {"{\"qid\":1}\n", "bad.jsonl:1: missing field \"step\""},
      {good1 + "{\"step\":1e999}\n", "bad.jsonl:2: malformed JSON"},  // out of range for a double: no throw
      {"{\"step\":0,\"qid\":1}\n", "bad.jsonl:1: field \"step\" must be an integer >= 1"},
      {"{\"step\":1,\"qid\":-3}\n", "bad.jsonl:1: field \"qid\""},
      {"{\"step\":1,\"qid\":1,\"question\":5}\n", "bad.jsonl:1: field \"question\" must be a string"},
      {"{\"step\":1,\"qid\":1,\"question\":\"q\",\"answer\":\"\"}\n", "bad.jsonl:1: field \"answer\" is empty"},
      {"{\"step\":1,\"qid\":1,\"question\":\"q\",\"answer\":\"a\",\"rephrase\":\"\",\"loc\":\"\",\"loc_ans\":\"\","
       "\"subject\":\"\",\"final\":\"yes\"}\n",
       "bad.jsonl:1: field \"final\" must be true or false"},
      {"{\"step\":1,\"qid\":1,\"question\":\"q\",\"answer\":\"a\",\"rephrase\":\"\",\"loc\":\"x\",\"loc_ans\":\"\","
       "\"subject\":\"\",\"final\":true}\n",
       "bad.jsonl:1: \"loc\" and \"loc_ans\""},
      {good1 + Line(1, "1", "B", true), "bad.jsonl:2: step 1 is not greater than the previous step 1"},
      {good1 + Line(2, "0", "B", true), "bad.jsonl:2: qid 0 appears after its final edit"},
      {Line(1, "0", "A", false) + Line(2, "1", "B", true), "bad.jsonl:1: qid 0: its last edit is not marked"},
      {"\n\n", "bad.jsonl: the stream has no edits"},
  };
  for (const BadCase& c : cases) {
    auto s = ParseStream(c.text, "bad.jsonl");
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.expect)) << c.text;
  }
}

// An edit with every optional field set (UTF-8 included).
StreamEdit FullEdit(int step, const std::string& qid, bool final) {
  StreamEdit e = Edit(step, qid, "Besançon", final, "Who is the mother of Ann?");
  e.rephrase = "Ann's mother is whom?";
  e.subject = "Ann";
  e.paraphrases = {"Name Ann's mother.", "Ann was born to whom?"};
  e.hint_unrelated = {"nq question: who wrote z"};
  e.hard_loc = {{"Who is the mother of Bob?", "Cleo"}, {"Who is the mother of Dan?", "Émile"}};
  e.reworded = {"The mother of Ann is", "Ann's mother is"};
  e.rel_spec = {{"The father of Ann is", "Carl"}};
  e.aliases = {{"Who is the mother of Annie?", "Besançon"}};
  return e;
}

TEST(StreamFormatTest, OptionalFieldsRoundTrip) {
  const StreamEdit e = FullEdit(3, "q-1", true);
  const std::string line = SerializeStreamEdit(e);
  EXPECT_THAT(line, HasSubstr(R"("subject":"Ann","paraphrases":["Name Ann's mother.","Ann was born to whom?"],)"
                              R"("hint_unrelated":["nq question: who wrote z"],"hard_loc":[{"prompt":)"));
  EXPECT_THAT(line, HasSubstr(R"("aliases":[{"prompt":"Who is the mother of Annie?","answer":"Besançon"}],"final":true})"));
  auto s = ParseStream(line, "x");
  ASSERT_TRUE(s.ok()) << s.status();
  const StreamEdit& back = s->edits[0];
  EXPECT_EQ(back.paraphrases, e.paraphrases);
  EXPECT_EQ(back.hint_unrelated, e.hint_unrelated);
  EXPECT_EQ(back.hard_loc, e.hard_loc);
  EXPECT_EQ(back.reworded, e.reworded);
  EXPECT_EQ(back.rel_spec, e.rel_spec);
  EXPECT_EQ(back.aliases, e.aliases);
  EXPECT_EQ(back.answer, "Besançon");
  EXPECT_EQ(SerializeStreamEdit(back), line);
}

TEST(StreamFormatTest, NineFieldStreamsAreWrittenAndReadAsBefore) {
  // Without optional fields the line is the nine-field form, byte for byte.
  EXPECT_EQ(Line(1, "0", "A", true),
            R"({"step":1,"qid":0,"question":"Who wrote X?","answer":"A","rephrase":"X was written by whom?",)"
            R"("loc":"nq question: who sang y","loc_ans":"Z","subject":"X","final":true})"
            "\n");
  auto s = ParseStream(Line(1, "0", "A", true), "old.jsonl");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->edits[0].hard_loc.empty() && s->edits[0].hint_unrelated.empty() && s->edits[0].reworded.empty());
}

TEST(StreamFormatTest, HintsMayDifferBetweenEditsButScoredPromptsMayNot) {
  StreamEdit a = FullEdit(1, "0", false), b = FullEdit(2, "0", true);
  b.answer = "Other";
  b.paraphrases = {"Tell me Ann's mother."};
  b.hint_unrelated.clear();
  auto ok = ParseStream(SerializeStreamEdit(a) + "\n" + SerializeStreamEdit(b), "s.jsonl");
  EXPECT_TRUE(ok.ok()) << ok.status();
  b.reworded = {"The mother of Ann is"};
  auto bad = ParseStream(SerializeStreamEdit(a) + "\n" + SerializeStreamEdit(b), "s.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("s.jsonl:2: qid 0: \"reworded\" differs"));
}

TEST(StreamFormatTest, RejectsHintsThatAreScoredAnywhere) {
  // A hint equal (up to case, spacing and end punctuation) to a scored prompt of this or another question.
  struct Case {
    void (*mutate)(StreamEdit* first, StreamEdit* second);
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](StreamEdit* a, StreamEdit*) { a->hint_unrelated = {"nq question: who sang Y?"}; },
       "s.jsonl:1: \"hint_unrelated\" prompt \"nq question: who sang Y?\" is also scored (\"loc\" of qid 0, line 1)"},
      {[](StreamEdit*, StreamEdit* b) { b->hint_unrelated = {"who is the mother of  bob"}; },
       "s.jsonl:2: \"hint_unrelated\" prompt \"who is the mother of  bob\" is also scored (\"hard_loc\" of qid 0"},
      {[](StreamEdit*, StreamEdit* b) { b->paraphrases = {"Ann's mother is whom?"}; },
       "(\"rephrase\" of qid 0, line 1)"},
      {[](StreamEdit* a, StreamEdit*) { a->paraphrases = {"Ann's mother is"}; }, "(\"reworded\" of qid 0"},
      {[](StreamEdit* a, StreamEdit*) { a->hint_unrelated = {"The father of Ann is"}; }, "(\"rel_spec\" of qid 0"},
      {[](StreamEdit* a, StreamEdit*) { a->paraphrases = {"Who is the mother of Annie?"}; }, "(\"aliases\" of qid 0"},
      {[](StreamEdit* a, StreamEdit*) { a->hint_unrelated = {"What is B?"}; }, "(\"question\" of qid 1, line 2)"},
  };
  for (const Case& c : cases) {
    StreamEdit a = FullEdit(1, "0", true);
    StreamEdit b = Edit(2, "1", "C", true, "What is B?");
    c.mutate(&a, &b);
    auto s = ParseStream(SerializeStreamEdit(a) + "\n" + SerializeStreamEdit(b), "s.jsonl");
    ASSERT_FALSE(s.ok()) << c.expect;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.expect));
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("hints and scored prompts must be disjoint"));
  }
}

TEST(StreamFormatTest, RejectsMalformedOptionalFields) {
  const std::string head = R"({"step":1,"qid":0,"question":"q","answer":"a","rephrase":"","loc":"","loc_ans":"","subject":"",)";
  const std::vector<BadCase> cases = {
      {head + R"("hard_loc":"x","final":true})", "o.jsonl:1: field \"hard_loc\" must be a list of {\"prompt\", \"answer\"}"},
      {head + R"("hard_loc":[{"prompt":"p"}],"final":true})", "field \"hard_loc\"[0] needs a non-empty string \"answer\""},
      {head + R"("rel_spec":[{"prompt":"","answer":"a"}],"final":true})", "field \"rel_spec\"[0] needs a non-empty string \"prompt\""},
      {head + R"("aliases":["p"],"final":true})", "field \"aliases\"[0] needs a non-empty string \"prompt\""},
      {head + R"("reworded":["ok",""],"final":true})", "field \"reworded\"[1] must be a non-empty string"},
      {head + R"("paraphrases":"p","final":true})", "field \"paraphrases\" must be a list of strings"},
      {head + R"("hint_unrelated":[3],"final":true})", "field \"hint_unrelated\"[0] must be a non-empty string"},
  };
  for (const BadCase& c : cases) {
    auto s = ParseStream(c.text, "o.jsonl");
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.expect)) << c.text;
  }
  StreamEdit e = FullEdit(1, "0", true);
  e.paraphrases.assign(kMaxParaphrases + 1, "x");
  for (size_t i = 0; i < e.paraphrases.size(); ++i) e.paraphrases[i] += std::to_string(i);
  auto many = ParseStream(SerializeStreamEdit(e), "o.jsonl");
  ASSERT_FALSE(many.ok());
  EXPECT_THAT(std::string(many.status().message()), HasSubstr("o.jsonl:1: \"paraphrases\" has 17 entries; EditFact takes at most 16"));
}

TEST(StreamFormatTest, MissingFileIsNotFound) {
  auto s = ReadStreamFile("/nonexistent/stream.jsonl");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetParseTest, DetectsFormatsAndReportsErrors) {
  auto z = ParseDataset(R"([{"src":"When was X founded?","alt":"1990","answers":["1980"],"rephrase":"r",
                          "loc":"l","loc_ans":"la","subject":"X"}])",
                        "z.json", DatasetFormat::kAuto);
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->format, DatasetFormat::kZsreMend);
  EXPECT_EQ(z->records[0].type, AnswerType::kYear);

  auto w = ParseDataset(R"([{"prompt":"The mother of X is","target_new":"Ann","subject":"X","ground_truth":"Bea",
      "portability":{"Subject_Aliasing":[{"prompt":"The mother of Y is","ground_truth":[["Ann","A."]]}]},
      "locality":{"Relation_Specificity":[{"prompt":"The father of X is","ground_truth":[["Carl","C."]]}]}}])",
                        "w.json", DatasetFormat::kAuto);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->format, DatasetFormat::kKnowEdit);
  EXPECT_EQ(w->records[0].rephrase, "The mother of Y is");
  EXPECT_EQ(w->records[0].loc, "The father of X is");
  EXPECT_EQ(w->records[0].loc_ans, "Carl");
  EXPECT_EQ(w->records[0].type, AnswerType::kPerson);

  auto unknown = ParseDataset(R"([{"question":"q","answer":"a"}])", "u.json", DatasetFormat::kAuto);
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown dataset format"));

  auto malformed = ParseDataset("[\n {\"src\": \"a\",\n  \"alt\": }\n]", "m.json", DatasetFormat::kAuto);
  ASSERT_FALSE(malformed.ok());
  EXPECT_THAT(std::string(malformed.status().message()), HasSubstr("m.json:3: malformed JSON"));

  auto missing = ParseDataset(R"([{"src":"q","alt":"a","answers":["b"],"rephrase":"r","loc":"l","loc_ans":"x","subject":"s"},
                                 {"src":"q","answers":["b"]}])",
                              "z.json", DatasetFormat::kAuto);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("record 1: missing field \"alt\""));

  auto lines = ParseDataset("{\"prompt\":\"p\",\"target_new\":\"t\",\"subject\":\"s\",\"ground_truth\":\"g\"}\n{oops\n",
                            "l.jsonl", DatasetFormat::kAuto);
  ASSERT_FALSE(lines.ok());
  EXPECT_THAT(std::string(lines.status().message()), HasSubstr("l.jsonl:2: malformed JSON"));

  auto overflow = ParseDataset("[{\"src\": 1e999}]", "o.json", DatasetFormat::kAuto);
  ASSERT_FALSE(overflow.ok());
  EXPECT_THAT(std::string(overflow.status().message()), HasSubstr("o.json: malformed JSON"));

  EXPECT_FALSE(ParseDatasetFormat("csv").ok());
}

TEST(StreamBuilderSmallTest, BuildsFromAHandMadeDataset) {
  std::string text = "[";
  for (int i = 0; i < 12; ++i) {
    if (i) text += ",";
    text += "{\"src\":\"When was S" + std::to_string(i) + " founded?\",\"alt\":\"" + std::to_string(1900 + i) +
            "\",\"answers\":[\"" + std::to_string(1950 + i) + "\"],\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"x\","
            "\"subject\":\"S" + std::to_string(i) + "\"}";
  }
  text += "]";
  auto ds = ParseDataset(text, "h.json", DatasetFormat::kAuto);
  ASSERT_TRUE(ds.ok()) << ds.status();
  BuildOptions opt;
  opt.questions = 4;
  opt.answers = 3;
  opt.seed = 1;
  auto s = BuildStream(*ds, opt);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->edits.size(), 12u);
  for (const StreamEdit& e : s->edits) {
    EXPECT_EQ(e.answer.size(), 4u) << e.answer;  // years drawn from the year pool
    EXPECT_NE(e.answer, std::to_string(1950 + std::stoi(e.qid)));
  }
  opt.questions = 13;
  EXPECT_FALSE(BuildStream(*ds, opt).ok());
  opt.questions = 2;
  opt.answers = 20;  // only 11 other targets exist
  auto too_many = BuildStream(*ds, opt);
  ASSERT_FALSE(too_many.ok());
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("distinct answers"));
}

TEST(AnswerTypeTest, Classifies) {
  EXPECT_EQ(ClassifyAnswer("When was the inception of X?", "X", "2006"), AnswerType::kYear);
  EXPECT_EQ(ClassifyAnswer("What is the date of birth for X?", "X", "May 3, 1921"), AnswerType::kYear);
  EXPECT_EQ(ClassifyAnswer("How many seats does X have?", "X", "1,250"), AnswerType::kNumber);
  EXPECT_EQ(ClassifyAnswer("The mother of X is whom?", "X", "Mary Smith"), AnswerType::kPerson);
  EXPECT_EQ(ClassifyAnswer("What country is X from?", "X", "Yemen"), AnswerType::kPlace);
  EXPECT_EQ(ClassifyAnswer("Which family does X belong to?", "X", "Lamiinae"), AnswerType::kOther);
  // The subject's own words are not cues.
  EXPECT_EQ(ClassifyAnswer("Which label released The Mother City?", "The Mother City", "Sony"), AnswerType::kOther);
  EXPECT_EQ(AnswerTypeName(AnswerType::kPlace), "place");
}

TEST(AnswerTypeTest, RelationKeyAndNormalize) {
  EXPECT_EQ(RelationKey("What is the date of birth for Ann Lee?", "Ann Lee"), "what is the date of birth for <s>");
  EXPECT_EQ(RelationKey("What is it?", "Ann"), "");
  EXPECT_EQ(NormalizeAnswer("  The  String. "), "the string");
  EXPECT_EQ(NormalizeAnswer("\"Émile\""), "Émile");
}

TEST(SplitMix64Test, IsDeterministicAndUniformInRange) {
  SplitMix64 a(0), b(0);
  EXPECT_EQ(a.Next(), 0xE220A8397B1DCDAFULL);  // the reference SplitMix64 output for seed 0
  b.Next();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = a.Uniform(7);
    EXPECT_EQ(x, b.Uniform(7));
    EXPECT_LT(x, 7u);
  }
}

}  // namespace
}  // namespace moke::bench
