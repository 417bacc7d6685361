// EasyEdit-protocol metrics computed from Score/Ask results (no gRPC here, so they are testable on
// hand-made responses). See REFERENCE section 8 and docs/benchmarks.md.
//
//   Rel.  teacher-forced token accuracy of the final answer after the question;
//   Gen.  the same after the rephrased question;
//   Loc.  fraction of the locality answer's positions whose argmax equals the unedited model's argmax;
//   Route the question routes to the expert that learned its final edit, and the locality prompt routes
//         to -1 (the original weights); route_rephrase: the same for the rephrased question;
//   EM    the greedy answer, normalized (NormalizeAnswer), equals the normalized final answer.
// The scope checks of issue 14, averaged over prompts (not questions):
//   hard_loc      a same-form question about another, never-edited subject routes to -1 AND its
//                 teacher-forced argmax tokens all equal the unedited model's (parts: _route, _answer);
//   rel_spec      the same on the edited subject's other relations (WikiCF Relation_Specificity);
//   gen_reworded  Gen. on form-changing rewordings (route_reworded: routed to the expected expert);
//   aliases       Gen. on the subject by another name (route_aliases);
//   em_free       EM of the Ask with no length hint (max_new_tokens = 0, the server's default);
//   stop_eos      the fraction of those answers that ended with STOP_END_OF_ANSWER.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moke::bench {

// What the metrics need from one ScoreResponse.
struct ScoreSample {
  double token_accuracy = 0;            // as reported by the server
  std::vector<int64_t> answer_tokens;   // the teacher-forced answer tokens
  std::vector<int64_t> argmax_tokens;   // argmax at each answer position (same length)
  int route_expert = -1;                // -1: the original weights
};

// Fraction of answer positions whose argmax equals the answer token. Uses the token lists when they are
// present and aligned; otherwise the server's token_accuracy.
double TokenAccuracy(const ScoreSample& score);

// Fraction of positions where `now` equals `original` (the unedited model's argmax on the same prompt and
// answer). INVALID_ARGUMENT when the lengths differ (the prompt was tokenized differently) or are empty.
absl::StatusOr<double> LocalityAgreement(const std::vector<int64_t>& now, const std::vector<int64_t>& original);

// NormalizeAnswer(generated) == NormalizeAnswer(expected): ASCII case, whitespace runs and ASCII end
// punctuation are ignored; every other byte (UTF-8 letters) must match exactly.
bool ExactMatch(const std::string& generated, const std::string& expected);

// A prompt that must be left alone (hard_loc, rel_spec).
struct LeftAloneCheck {
  bool routed_original = false;  // routed to -1 (the original weights)
  bool unchanged = false;        // every teacher-forced argmax token equals the unedited model's
};

// `now` against the unedited model's argmax on the same prompt and answer; errors as LocalityAgreement.
absl::StatusOr<LeftAloneCheck> CheckLeftAlone(const ScoreSample& now, const std::vector<int64_t>& original);

// A prompt that must get the final answer (reworded, aliases).
struct ReachCheck {
  double accuracy = 0;           // TokenAccuracy of the final answer after the prompt
  bool routed_expected = false;  // routed to the expert that learned the question's final edit
};

// The evaluation of one question (its final answer).
struct QuestionEval {
  std::string qid;
  std::string answer;                  // the final answer evaluated
  double rel = 0;
  std::optional<double> gen;           // absent: no rephrase
  std::optional<double> loc;           // absent: no locality prompt
  int expected_expert = -1;            // EditFactResponse.expert of the final edit
  int routed_expert = -1;              // route of the question
  std::optional<int> loc_routed_expert;
  std::optional<bool> em;              // absent: not evaluated
  std::string generated;
  std::optional<int> gen_routed_expert;  // route of the rephrase (absent: no rephrase)
  std::vector<LeftAloneCheck> hard_loc, rel_spec;
  std::vector<ReachCheck> reworded, aliases;
  std::optional<bool> em_free;         // absent: not evaluated
  std::optional<bool> stop_eos;        // the free answer ended with STOP_END_OF_ANSWER
  std::string generated_free;          // the free answer
};

// Means over the prompts of one kind of left-alone check (absent when there are none).
struct LeftAloneSummary {
  int count = 0;
  std::optional<double> both, route, answer;
};
struct ReachSummary {
  int count = 0;
  std::optional<double> accuracy, route;
};

struct Summary {
  int questions = 0;
  int gen_count = 0, loc_count = 0, em_count = 0;
  double rel = 0;                      // mean over questions
  std::optional<double> gen, loc, em;  // means over the questions that have them
  double route_question = 0;           // fraction of questions routed to their expected expert
  std::optional<double> route_loc;     // fraction of loc prompts routed to -1
  double route = 0;                    // both together: hits / (questions + loc prompts)
  std::optional<double> route_rephrase;  // fraction of rephrases routed to their question's expected expert
  LeftAloneSummary hard_loc, rel_spec;
  ReachSummary reworded, aliases;
  int em_free_count = 0;
  std::optional<double> em_free, stop_eos;
};

Summary Summarize(const std::vector<QuestionEval>& evals);

// Percentile by linear interpolation between closest ranks (numpy's default); q in [0, 100].
// 0 for an empty input.
double Percentile(std::vector<double> values, double q);

struct LatencySummary {
  int count = 0;
  double mean = 0, median = 0, p95 = 0, p99 = 0, min = 0, max = 0;
  std::optional<double> at_10;  // the 10th value (1-based), when there are >= 10
  std::optional<double> last;
  double total = 0;
};

// `seconds` in the order the operations happened.
LatencySummary SummarizeLatency(const std::vector<double>& seconds);

}  // namespace moke::bench
