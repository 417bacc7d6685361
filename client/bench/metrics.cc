#include "client/bench/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/bench/answer_type.h"

namespace moke::bench {

double TokenAccuracy(const ScoreSample& score) {
  if (!score.answer_tokens.empty() && score.answer_tokens.size() == score.argmax_tokens.size()) {
    size_t hits = 0;
    for (size_t i = 0; i < score.answer_tokens.size(); ++i) hits += score.answer_tokens[i] == score.argmax_tokens[i];
    return static_cast<double>(hits) / static_cast<double>(score.answer_tokens.size());
  }
  return std::clamp(score.token_accuracy, 0.0, 1.0);
}

absl::StatusOr<double> LocalityAgreement(const std::vector<int64_t>& now, const std::vector<int64_t>& original) {
  if (original.empty()) return absl::InvalidArgumentError("the unedited model's argmax tokens are empty");
  if (now.size() != original.size())
    return absl::InvalidArgumentError(absl::StrCat("locality: ", now.size(), " argmax tokens now, ", original.size(),
                                                   " before the first edit"));
  size_t same = 0;
  for (size_t i = 0; i < now.size(); ++i) same += now[i] == original[i];
  return static_cast<double>(same) / static_cast<double>(now.size());
}

bool ExactMatch(const std::string& generated, const std::string& expected) {
  return NormalizeAnswer(generated) == NormalizeAnswer(expected);
}

absl::StatusOr<LeftAloneCheck> CheckLeftAlone(const ScoreSample& now, const std::vector<int64_t>& original) {
  auto agree = LocalityAgreement(now.argmax_tokens, original);
  if (!agree.ok()) return agree.status();
  return LeftAloneCheck{now.route_expert == -1, *agree == 1.0};
}

namespace {

LeftAloneSummary SummarizeLeftAlone(const std::vector<QuestionEval>& evals,
                                    std::vector<LeftAloneCheck> QuestionEval::*field) {
  LeftAloneSummary s;
  int both = 0, route = 0, answer = 0;
  for (const QuestionEval& e : evals) {
    for (const LeftAloneCheck& c : e.*field) {
      ++s.count;
      both += c.routed_original && c.unchanged;
      route += c.routed_original;
      answer += c.unchanged;
    }
  }
  if (s.count > 0) {
    s.both = static_cast<double>(both) / s.count;
    s.route = static_cast<double>(route) / s.count;
    s.answer = static_cast<double>(answer) / s.count;
  }
  return s;
}

ReachSummary SummarizeReach(const std::vector<QuestionEval>& evals, std::vector<ReachCheck> QuestionEval::*field) {
  ReachSummary s;
  double accuracy = 0;
  int route = 0;
  for (const QuestionEval& e : evals) {
    for (const ReachCheck& c : e.*field) {
      ++s.count;
      accuracy += c.accuracy;
      route += c.routed_expected;
    }
  }
  if (s.count > 0) {
    s.accuracy = accuracy / s.count;
    s.route = static_cast<double>(route) / s.count;
  }
  return s;
}

}  // namespace

Summary Summarize(const std::vector<QuestionEval>& evals) {
  Summary s;
  s.questions = static_cast<int>(evals.size());
  double rel = 0, gen = 0, loc = 0;
  int em_hits = 0, route_q = 0, route_l = 0, route_g = 0, gen_routes = 0;
  for (const QuestionEval& e : evals) {
    rel += e.rel;
    if (e.gen) { gen += *e.gen; ++s.gen_count; }
    if (e.loc) { loc += *e.loc; ++s.loc_count; }
    if (e.em) { em_hits += *e.em; ++s.em_count; }
    route_q += e.routed_expert == e.expected_expert;
    if (e.loc_routed_expert) route_l += *e.loc_routed_expert == -1;
    if (e.gen_routed_expert) {
      ++gen_routes;
      route_g += *e.gen_routed_expert == e.expected_expert;
    }
  }
  int loc_routes = 0;
  for (const QuestionEval& e : evals) loc_routes += e.loc_routed_expert.has_value();
  if (s.questions > 0) {
    s.rel = rel / s.questions;
    s.route_question = static_cast<double>(route_q) / s.questions;
  }
  if (s.gen_count > 0) s.gen = gen / s.gen_count;
  if (s.loc_count > 0) s.loc = loc / s.loc_count;
  if (s.em_count > 0) s.em = static_cast<double>(em_hits) / s.em_count;
  if (gen_routes > 0) s.route_rephrase = static_cast<double>(route_g) / gen_routes;
  if (loc_routes > 0) s.route_loc = static_cast<double>(route_l) / loc_routes;
  if (s.questions + loc_routes > 0)
    s.route = static_cast<double>(route_q + route_l) / static_cast<double>(s.questions + loc_routes);
  s.hard_loc = SummarizeLeftAlone(evals, &QuestionEval::hard_loc);
  s.rel_spec = SummarizeLeftAlone(evals, &QuestionEval::rel_spec);
  s.reworded = SummarizeReach(evals, &QuestionEval::reworded);
  s.aliases = SummarizeReach(evals, &QuestionEval::aliases);
  int em_free_hits = 0, eos = 0;
  for (const QuestionEval& e : evals) {
    if (!e.em_free) continue;
    ++s.em_free_count;
    em_free_hits += *e.em_free;
    eos += e.stop_eos.value_or(false);
  }
  if (s.em_free_count > 0) {
    s.em_free = static_cast<double>(em_free_hits) / s.em_free_count;
    s.stop_eos = static_cast<double>(eos) / s.em_free_count;
  }
  return s;
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  q = std::clamp(q, 0.0, 100.0);
  const double pos = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

LatencySummary SummarizeLatency(const std::vector<double>& seconds) {
  LatencySummary s;
  s.count = static_cast<int>(seconds.size());
  if (seconds.empty()) return s;
  for (double v : seconds) s.total += v;
  s.mean = s.total / static_cast<double>(seconds.size());
  s.median = Percentile(seconds, 50);
  s.p95 = Percentile(seconds, 95);
  s.p99 = Percentile(seconds, 99);
  s.min = *std::min_element(seconds.begin(), seconds.end());
  s.max = *std::max_element(seconds.begin(), seconds.end());
  if (seconds.size() >= 10) s.at_10 = seconds[9];
  s.last = seconds.back();
  return s;
}

}  // namespace moke::bench
