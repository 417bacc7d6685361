// Metric math on hand-made Score responses (no server).
#include "client/bench/metrics.h"

#include "client/bench/answer_type.h"
#include "client/bench/bench_client.h"
#include "client/bench/load.h"
#include "gtest/gtest.h"

namespace moke::bench {
namespace {

TEST(MetricsTest, TokenAccuracyUsesAlignedTokens) {
  ScoreSample s;
  s.answer_tokens = {5, 6, 7, 8};
  s.argmax_tokens = {5, 0, 7, 0};
  s.token_accuracy = 0.99;  // ignored when the token lists are aligned
  EXPECT_DOUBLE_EQ(TokenAccuracy(s), 0.5);
  s.argmax_tokens = {5};
  EXPECT_DOUBLE_EQ(TokenAccuracy(s), 0.99);  // falls back to the server's number
  s.token_accuracy = 1.5;
  EXPECT_DOUBLE_EQ(TokenAccuracy(s), 1.0);  // clamped
}

TEST(MetricsTest, LocalityComparesWithTheUneditedArgmax) {
  EXPECT_DOUBLE_EQ(*LocalityAgreement({1, 2, 3}, {1, 2, 3}), 1.0);
  EXPECT_DOUBLE_EQ(*LocalityAgreement({1, 9, 3, 9}, {1, 2, 3, 4}), 0.5);
  EXPECT_FALSE(LocalityAgreement({1, 2}, {1, 2, 3}).ok());
  EXPECT_FALSE(LocalityAgreement({}, {}).ok());
}

TEST(MetricsTest, ExactMatchNormalizes) {
  EXPECT_TRUE(ExactMatch(" the String.", "The String"));
  EXPECT_FALSE(ExactMatch("The String Theory", "The String"));
}

TEST(MetricsTest, SummarizesHandMadeEvaluations) {
  std::vector<QuestionEval> evals(4);
  // q0: perfect, routed right, loc kept, EM.
  evals[0] = {"0", "a", 1.0, 1.0, 1.0, 2, 2, -1, true, "a"};
  // q1: half right, wrong expert, loc prompt routed to an expert.
  evals[1] = {"1", "b", 0.5, 0.25, 0.5, 1, 0, 1, false, "c"};
  // q2: no rephrase, no loc, no EM.
  evals[2] = {"2", "c", 0.0, std::nullopt, std::nullopt, 0, 0, std::nullopt, std::nullopt, ""};
  // q3
  evals[3] = {"3", "d", 0.5, 0.5, 1.0, 1, 1, -1, false, "x"};
  evals[0].gen_routed_expert = 2;  // right
  evals[1].gen_routed_expert = 0;  // wrong (expected 1)
  evals[3].gen_routed_expert = -1; // wrong: the rephrase missed the gate
  const Summary s = Summarize(evals);
  EXPECT_DOUBLE_EQ(*s.route_rephrase, 1.0 / 3);
  EXPECT_EQ(s.questions, 4);
  EXPECT_DOUBLE_EQ(s.rel, (1.0 + 0.5 + 0.0 + 0.5) / 4);
  EXPECT_EQ(s.gen_count, 3);
  EXPECT_DOUBLE_EQ(*s.gen, (1.0 + 0.25 + 0.5) / 3);
  EXPECT_EQ(s.loc_count, 3);
  EXPECT_DOUBLE_EQ(*s.loc, (1.0 + 0.5 + 1.0) / 3);
  EXPECT_EQ(s.em_count, 3);
  EXPECT_DOUBLE_EQ(*s.em, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s.route_question, 3.0 / 4);   // q0, q2, q3
  EXPECT_DOUBLE_EQ(*s.route_loc, 2.0 / 3);       // q0, q3
  EXPECT_DOUBLE_EQ(s.route, (3.0 + 2.0) / (4 + 3));
}

TEST(MetricsTest, ExactMatchComparesUtf8ByteForByte) {
  EXPECT_TRUE(ExactMatch(" Besançon.\n", "besançon"));          // ASCII case, spaces, end punctuation
  EXPECT_TRUE(ExactMatch("Franche-Comté", "Franche-Comté"));
  EXPECT_FALSE(ExactMatch("Besancon", "Besançon"));              // no accent folding
  EXPECT_FALSE(ExactMatch("ÉMILE", "émile"));                    // case folding is ASCII only
  EXPECT_TRUE(ExactMatch("\"🇸🇾\"", "🇸🇾"));                       // quotes stripped, emoji kept
  EXPECT_FALSE(ExactMatch("Besan\xc3", "Besançon"));             // a cut UTF-8 sequence is not a match
  EXPECT_EQ(NormalizeAnswer("  Nermin  Čeliković!  "), "nermin Čeliković");  // Č is not ASCII: kept
}

TEST(MetricsTest, LeftAloneNeedsTheOriginalRouteAndEveryToken) {
  ScoreSample s;
  s.argmax_tokens = {4, 5, 6};
  s.route_expert = -1;
  auto both = CheckLeftAlone(s, {4, 5, 6});
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE(both->routed_original && both->unchanged);
  s.route_expert = 2;  // captured by an expert that happens to give the same tokens
  auto routed = CheckLeftAlone(s, {4, 5, 6});
  EXPECT_FALSE(routed->routed_original);
  EXPECT_TRUE(routed->unchanged);
  s.route_expert = -1;
  s.argmax_tokens = {4, 9, 6};  // one of three tokens changed: Loc. would be 2/3, the check fails
  EXPECT_FALSE(CheckLeftAlone(s, {4, 5, 6})->unchanged);
  EXPECT_FALSE(CheckLeftAlone(s, {4, 5}).ok());
}

TEST(MetricsTest, SummarizesScopeChecksOverPrompts) {
  std::vector<QuestionEval> evals(3);
  evals[0].hard_loc = {{true, true}, {false, true}};
  evals[1].hard_loc = {{true, false}};
  evals[0].rel_spec = {{true, true}};
  evals[2].rel_spec = {{false, false}, {true, true}, {true, true}};
  evals[0].reworded = {{1.0, true}, {0.5, false}};
  evals[2].reworded = {{0.0, false}};
  evals[1].aliases = {{0.25, true}};
  evals[0].em_free = true;
  evals[0].stop_eos = true;
  evals[1].em_free = false;
  evals[1].stop_eos = true;
  evals[2].em_free = false;
  evals[2].stop_eos = false;
  const Summary s = Summarize(evals);
  EXPECT_EQ(s.hard_loc.count, 3);
  EXPECT_DOUBLE_EQ(*s.hard_loc.both, 1.0 / 3);  // only the first prompt is routed to -1 and unchanged
  EXPECT_DOUBLE_EQ(*s.hard_loc.route, 2.0 / 3);
  EXPECT_DOUBLE_EQ(*s.hard_loc.answer, 2.0 / 3);
  EXPECT_EQ(s.rel_spec.count, 4);
  EXPECT_DOUBLE_EQ(*s.rel_spec.both, 3.0 / 4);  // averaged over prompts, not questions (which gives 5/6)
  EXPECT_EQ(s.reworded.count, 3);
  EXPECT_DOUBLE_EQ(*s.reworded.accuracy, 1.5 / 3);
  EXPECT_DOUBLE_EQ(*s.reworded.route, 1.0 / 3);
  EXPECT_EQ(s.aliases.count, 1);
  EXPECT_DOUBLE_EQ(*s.aliases.accuracy, 0.25);
  EXPECT_DOUBLE_EQ(*s.aliases.route, 1.0);
  EXPECT_EQ(s.em_free_count, 3);
  EXPECT_DOUBLE_EQ(*s.em_free, 1.0 / 3);
  EXPECT_DOUBLE_EQ(*s.stop_eos, 2.0 / 3);
}

TEST(MetricsTest, EmptySummaryIsZeroAndAbsent) {
  const Summary s = Summarize({});
  EXPECT_EQ(s.questions, 0);
  EXPECT_FALSE(s.gen.has_value());
  EXPECT_FALSE(s.loc.has_value());
  EXPECT_FALSE(s.em.has_value());
  EXPECT_FALSE(s.route_loc.has_value());
  EXPECT_FALSE(s.route_rephrase.has_value());
  EXPECT_FALSE(s.hard_loc.both.has_value());
  EXPECT_FALSE(s.rel_spec.route.has_value());
  EXPECT_FALSE(s.reworded.accuracy.has_value());
  EXPECT_FALSE(s.aliases.route.has_value());
  EXPECT_FALSE(s.em_free.has_value());
  EXPECT_FALSE(s.stop_eos.has_value());
}

TEST(MetricsTest, PercentileMatchesNumpyLinear) {
  // numpy.percentile([1,2,3,4,5,6,7,8,9,10], [50,95,99]) = 5.5, 9.55, 9.91
  std::vector<double> v = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(Percentile(v, 50), 5.5);
  EXPECT_NEAR(Percentile(v, 95), 9.55, 1e-12);
  EXPECT_NEAR(Percentile(v, 99), 9.91, 1e-12);
  EXPECT_DOUBLE_EQ(Percentile({}, 50), 0);
  EXPECT_DOUBLE_EQ(Percentile({3}, 99), 3);
}

TEST(MetricsTest, LatencySummaryKeepsOrderForEdit10AndLast) {
  std::vector<double> v;
  for (int i = 1; i <= 12; ++i) v.push_back(i * 0.1);
  const LatencySummary s = SummarizeLatency(v);
  EXPECT_EQ(s.count, 12);
  EXPECT_DOUBLE_EQ(*s.at_10, 1.0);
  EXPECT_DOUBLE_EQ(*s.last, 1.2);
  EXPECT_NEAR(s.median, 0.65, 1e-12);
  EXPECT_NEAR(s.total, 7.8, 1e-12);
  EXPECT_FALSE(SummarizeLatency({0.1, 0.2}).at_10.has_value());
}

TEST(LoadOptionsTest, LoopbackOnlyAndBounded) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:80"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:5000"));
  EXPECT_FALSE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("127.0.0.1:0"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:5000"));
  EXPECT_FALSE(IsLoopbackAddress("example.com:5000"));
  EXPECT_FALSE(IsLoopbackAddress("127.0.0.1.evil.com:5000"));
  EXPECT_FALSE(IsLoopbackAddress("[::2]:5000"));

  LoadOptions o;
  o.server = "127.0.0.1:5000";
  EXPECT_TRUE(ValidateLoadOptions(o).ok());
  o.clients = kMaxClients + 1;
  EXPECT_FALSE(ValidateLoadOptions(o).ok());
  o.clients = 2;
  o.seconds = kMaxSeconds + 1;
  EXPECT_FALSE(ValidateLoadOptions(o).ok());
  o.seconds = 5;
  o.server = "192.168.1.2:5000";
  EXPECT_EQ(ValidateLoadOptions(o).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moke::bench
