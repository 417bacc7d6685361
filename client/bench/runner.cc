#include "client/bench/runner.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/bench/bench_client.h"
#include "client/bench/metrics.h"
#include "client/bench/plot.h"
#include "client/bench/progress.h"
#include "client/bench/stream.h"
#include "nlohmann/json.hpp"

namespace moke::bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct EditRow {
  int64_t step = 0;
  std::string qid;
  int expert = -1;
  double latency_s = 0;
  bool new_concept = false;
  uint64_t version = 0;
  uint64_t edit_id = 0;
  bool final = false;
  bool duplicate = false;
  int iterations = 0;
  double loss = 0;
  double apply_s = 0;
  int attempts = 1;
  std::string subject;  // the subject the server keyed the edit on (EditFactResponse.subject)
  uint64_t superseded_edit_id = 0;
};

struct Baseline {
  std::optional<std::vector<int64_t>> loc_argmax;
  double unedited_rel = 0;
};

// What to evaluate for one question: its edit (prompts) and the answer/expert expected now.
struct EvalTarget {
  const StreamEdit* edit = nullptr;
  std::string answer;
  int expected_expert = -1;
};

struct CurvePoint {
  int64_t edits = 0;
  Summary summary;
};

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

template <typename T>
json Opt(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json SummaryJson(const Summary& s) {
  return json{{"rel", s.rel},
              {"gen", Opt(s.gen)},
              {"loc", Opt(s.loc)},
              {"route", s.route},
              {"route_question", s.route_question},
              {"route_loc", Opt(s.route_loc)},
              {"route_rephrase", Opt(s.route_rephrase)},
              {"em", Opt(s.em)},
              {"questions", s.questions},
              {"gen_count", s.gen_count},
              {"loc_count", s.loc_count},
              {"em_count", s.em_count},
              {"hard_loc", Opt(s.hard_loc.both)},
              {"hard_loc_route", Opt(s.hard_loc.route)},
              {"hard_loc_answer", Opt(s.hard_loc.answer)},
              {"hard_loc_count", s.hard_loc.count},
              {"rel_spec", Opt(s.rel_spec.both)},
              {"rel_spec_route", Opt(s.rel_spec.route)},
              {"rel_spec_answer", Opt(s.rel_spec.answer)},
              {"rel_spec_count", s.rel_spec.count},
              {"gen_reworded", Opt(s.reworded.accuracy)},
              {"route_reworded", Opt(s.reworded.route)},
              {"reworded_count", s.reworded.count},
              {"aliases", Opt(s.aliases.accuracy)},
              {"route_aliases", Opt(s.aliases.route)},
              {"aliases_count", s.aliases.count},
              {"em_free", Opt(s.em_free)},
              {"stop_eos", Opt(s.stop_eos)},
              {"em_free_count", s.em_free_count}};
}

// One entry per prompt, in the stream's order (`prompts` are the stream's, `checks` what was measured).
json LeftAloneJson(const std::vector<PromptAnswer>& prompts, const std::vector<LeftAloneCheck>& checks) {
  json out = json::array();
  for (size_t i = 0; i < checks.size() && i < prompts.size(); ++i)
    out.push_back({{"prompt", prompts[i].prompt},
                   {"routed_original", checks[i].routed_original},
                   {"unchanged", checks[i].unchanged}});
  return out;
}

json ReachJson(const std::vector<std::string>& prompts, const std::vector<ReachCheck>& checks) {
  json out = json::array();
  for (size_t i = 0; i < checks.size() && i < prompts.size(); ++i)
    out.push_back({{"prompt", prompts[i]}, {"accuracy", checks[i].accuracy}, {"routed_expected", checks[i].routed_expected}});
  return out;
}

std::vector<std::string> PromptsOf(const std::vector<PromptAnswer>& list) {
  std::vector<std::string> out;
  for (const PromptAnswer& p : list) out.push_back(p.prompt);
  return out;
}

std::string RoutingName(moke::v1::RoutingMode mode) {
  switch (mode) {
    case moke::v1::ROUTING_ROUTER: return "router";
    case moke::v1::ROUTING_ACTIVATION: return "activation";
    case moke::v1::ROUTING_ACTIVATION_ROUTER: return "activation_router";
    default: return "default";
  }
}

std::string Fmt(const std::optional<double>& v) { return v ? absl::StrFormat("%.2f", *v) : "n/a"; }

class BenchRun {
 public:
  explicit BenchRun(const RunOptions& options) : opt_(options) {}

  absl::Status Run() {
    // 1. The whole stream is read and checked before anything is sent.
    auto stream = ReadStreamFile(opt_.stream_path);
    if (!stream.ok()) return stream.status();
    stream_ = *std::move(stream);
    if (!opt_.name.empty()) stream_.name = opt_.name;
    questions_ = StreamQuestions(stream_);

    std::error_code ec;
    std::filesystem::create_directories(opt_.out_dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create --out ", opt_.out_dir, ": ", ec.message()));
    csv_path_ = (std::filesystem::path(opt_.out_dir) / "per_edit.csv").string();
    results_path_ = (std::filesystem::path(opt_.out_dir) / "results.json").string();
    csv_.open(csv_path_, std::ios::trunc);
    if (!csv_) return absl::PermissionDeniedError(absl::StrCat("cannot write ", csv_path_));
    csv_ << "step,qid,expert,latency_s,new_concept,version,edit_id,final,duplicate,iterations,loss,apply_s,attempts,"
            "subject,superseded_edit_id\n";
    csv_.flush();

    absl::Status status = RunPhases();
    if (!status.ok()) {
      error_ = std::string(status.message());
      if (auto w = WriteResults(false); !w.ok()) std::cerr << "moke-bench: warning: " << w.message() << "\n";
      std::cerr << "moke-bench: partial results (" << rows_.size() << " of " << stream_.edits.size()
                << " edits) written to " << opt_.out_dir << "\n";
      return status;
    }
    if (auto w = WriteResults(true); !w.ok()) return w;
    PrintTable();
    std::cout.flush();  // the plot script writes to the same stdout
    if (opt_.plot) {
      const std::string png = (std::filesystem::path(opt_.out_dir) / "bench.png").string();
      if (auto p = RunPlot(FindPlotScript(opt_.plot_script), opt_.out_dir, png); !p.ok()) {
        std::cerr << "moke-bench: warning: " << p.message() << "\n";
      } else {
        std::cout << "plot: " << png << "\n";
        plot_path_ = png;
        (void)WriteResults(true);  // records the plot's path
      }
    }
    std::cout << "results: " << results_path_ << "\nper-edit records: " << csv_path_ << "\n";
    return absl::OkStatus();
  }

 private:
  absl::Status RunPhases() {
    ClientOptions copt;
    copt.server = opt_.server;
    copt.token = opt_.token;
    copt.edit_timeout_s = opt_.edit_timeout_s;
    copt.read_timeout_s = opt_.read_timeout_s;
    auto client = BenchClient::Create(copt);
    if (!client.ok()) return client.status();
    client_ = *std::move(client);
    if (auto s = client_->WaitUntilServing(opt_.connect_timeout_s); !s.ok()) return s;
    auto st = client_->GetStatus();
    if (!st.ok()) return st.status();
    server_status_ = *st;
    if (server_status_->version() != 0 || server_status_->edits_applied() != 0)
      std::cerr << "moke-bench: warning: the server already holds " << server_status_->edits_applied()
                << " edits (version " << server_status_->version()
                << "); start it on a fresh --data-dir for comparable numbers\n";

    if (auto s = RecordBaseline(); !s.ok()) return s;
    if (auto s = ReplayEdits(); !s.ok()) return s;

    // Final evaluation: every question's final answer.
    std::vector<EvalTarget> targets;
    for (const StreamQuestion& q : questions_) {
      const StreamEdit& e = stream_.edits[q.final_index];
      targets.push_back(EvalTarget{&e, e.answer, latest_expert_.at(q.qid)});
    }
    auto evals = Evaluate(targets, opt_.exact_match, "eval");
    if (!evals.ok()) return evals.status();
    final_evals_ = *std::move(evals);
    final_summary_ = Summarize(final_evals_);
    curve_.push_back(CurvePoint{static_cast<int64_t>(rows_.size()), *final_summary_});
    return absl::OkStatus();
  }

  absl::Status RecordBaseline() {
    Progress progress("baseline", static_cast<int>(questions_.size()), opt_.progress);
    int done = 0;
    for (const StreamQuestion& q : questions_) {
      const StreamEdit& e = stream_.edits[q.final_index];
      Baseline b;
      moke::v1::ScoreRequest req;
      req.set_prompt(e.question);
      req.set_answer(e.answer);
      req.set_original_model(true);
      auto rel = client_->Score(req);
      if (!rel.ok()) return rel.status();
      b.unedited_rel = TokenAccuracy(ToSample(*rel));
      if (!e.loc.empty()) {
        req.set_prompt(e.loc);
        req.set_answer(e.loc_ans);
        auto loc = client_->Score(req);
        if (!loc.ok()) return loc.status();
        b.loc_argmax = std::vector<int64_t>(loc->argmax_tokens().begin(), loc->argmax_tokens().end());
      }
      baseline_[q.qid] = std::move(b);
      for (const auto* list : {&e.hard_loc, &e.rel_spec}) {
        for (const PromptAnswer& p : *list) {
          auto [it, inserted] = original_argmax_.try_emplace({p.prompt, p.answer});
          if (!inserted) continue;
          req.set_prompt(p.prompt);
          req.set_answer(p.answer);
          auto orig = client_->Score(req);
          if (!orig.ok()) return orig.status();
          it->second.assign(orig->argmax_tokens().begin(), orig->argmax_tokens().end());
        }
      }
      progress.Update(++done);
    }
    return absl::OkStatus();
  }

  absl::Status ReplayEdits() {
    Progress progress("edits", static_cast<int>(stream_.edits.size()), opt_.progress);
    std::map<std::string, const StreamEdit*> latest_edit;
    std::vector<std::string> seen_order;
    bool warned_duplicate = false;
    if (opt_.send_unrelated &&
        std::none_of(stream_.edits.begin(), stream_.edits.end(), [](const StreamEdit& e) { return !e.hint_unrelated.empty(); }))
      std::cerr << "moke-bench: note: the stream has no \"hint_unrelated\": the edits carry no unrelated prompts "
                   "(its loc prompts are scored, so they are never sent; rebuild it with build-stream for hints)\n";
    const auto t0 = Clock::now();
    for (const StreamEdit& e : stream_.edits) {
      moke::v1::EditFactRequest req;
      req.set_question(e.question);
      req.set_answer(e.answer);
      req.set_request_id(absl::StrCat(stream_.name, ":", e.step));
      // Hints only: the unrelated prompts x_o and the paraphrases are disjoint from every scored prompt
      // (ValidateStream), so Loc., hard_loc and Gen. are measured on prompts the server never saw.
      if (opt_.send_subject && !e.subject.empty()) req.set_subject(e.subject);
      if (opt_.send_paraphrases)
        for (const std::string& p : e.paraphrases) req.add_paraphrases(p);
      if (opt_.send_unrelated)
        for (const std::string& h : e.hint_unrelated) req.add_unrelated_prompts(h);
      EditRow row;
      absl::StatusOr<moke::v1::EditFactResponse> resp;
      for (int attempt = 1;; ++attempt) {
        const auto start = Clock::now();
        resp = client_->EditFact(req);
        row.latency_s = std::chrono::duration<double>(Clock::now() - start).count();
        row.attempts = attempt;
        if (resp.ok() || !absl::IsUnavailable(resp.status()) || attempt > opt_.retries) break;
        std::cerr << "\nmoke-bench: step " << e.step << ": " << resp.status().message() << "; retrying ("
                  << attempt << "/" << opt_.retries << ")\n";
        std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
      }
      if (!resp.ok()) {
        progress.Finish();
        return absl::Status(resp.status().code(), absl::StrCat("edit step ", e.step, " (qid ", e.qid, ", line ", e.line,
                                                               ") refused: ", resp.status().message()));
      }
      row.step = e.step;
      row.qid = e.qid;
      row.expert = resp->expert();
      row.new_concept = resp->new_concept();
      row.version = resp->version();
      row.edit_id = resp->edit_id();
      row.final = e.final;
      row.duplicate = resp->duplicate();
      row.iterations = resp->iterations();
      row.loss = resp->loss();
      row.apply_s = resp->apply_seconds();
      row.subject = resp->subject();
      row.superseded_edit_id = resp->superseded_edit_id();
      if (row.duplicate && !warned_duplicate) {
        warned_duplicate = true;
        std::cerr << "\nmoke-bench: warning: the server had already seen request " << req.request_id()
                  << " (nothing applied); restart it on a fresh --data-dir or pass --name for a new run\n";
      }
      last_version_ = std::max(last_version_, row.version);
      csv_ << row.step << ',' << CsvField(row.qid) << ',' << row.expert << ',' << absl::StrFormat("%.6f", row.latency_s)
           << ',' << (row.new_concept ? 1 : 0) << ',' << row.version << ',' << row.edit_id << ',' << (row.final ? 1 : 0)
           << ',' << (row.duplicate ? 1 : 0) << ',' << row.iterations << ',' << absl::StrFormat("%.6g", row.loss) << ','
           << absl::StrFormat("%.6f", row.apply_s) << ',' << row.attempts << ',' << CsvField(row.subject) << ','
           << row.superseded_edit_id << '\n';
      csv_.flush();
      rows_.push_back(row);
      latest_expert_[e.qid] = row.expert;
      if (latest_edit.emplace(e.qid, &e).second) seen_order.push_back(e.qid);
      latest_edit[e.qid] = &e;
      edit_wall_s_ = std::chrono::duration<double>(Clock::now() - t0).count();
      progress.Update(static_cast<int>(rows_.size()));

      const int64_t n = static_cast<int64_t>(rows_.size());
      if (opt_.eval_every > 0 && n % opt_.eval_every == 0 && n < static_cast<int64_t>(stream_.edits.size())) {
        std::vector<EvalTarget> targets;
        for (const std::string& qid : seen_order) {
          const StreamEdit* le = latest_edit[qid];
          targets.push_back(EvalTarget{le, le->answer, latest_expert_[qid]});
        }
        auto evals = Evaluate(targets, /*with_em=*/false, "");
        if (!evals.ok()) return evals.status();
        curve_.push_back(CurvePoint{n, Summarize(*evals)});
      }
    }
    progress.Finish();
    return absl::OkStatus();
  }

  static ScoreSample ToSample(const moke::v1::ScoreResponse& r) {
    ScoreSample s;
    s.token_accuracy = r.token_accuracy();
    s.answer_tokens.assign(r.answer_tokens().begin(), r.answer_tokens().end());
    s.argmax_tokens.assign(r.argmax_tokens().begin(), r.argmax_tokens().end());
    s.route_expert = r.has_route() ? r.route().expert() : -1;
    return s;
  }

  // Score(prompt, answer) on the current knowledge (min_version = the last edit's) with the run's routing.
  absl::StatusOr<ScoreSample> ScoreNow(const std::string& prompt, const std::string& answer) {
    moke::v1::ScoreRequest req;
    req.set_min_version(last_version_);
    req.set_routing(opt_.routing);
    req.set_prompt(prompt);
    req.set_answer(answer);
    auto r = client_->Score(req);
    if (!r.ok()) return r.status();
    return ToSample(*r);
  }

  // Prompts that must get the question's final answer (reworded, aliases).
  absl::Status ScoreReach(const std::vector<std::string>& prompts, const EvalTarget& t, std::vector<ReachCheck>* out) {
    for (const std::string& p : prompts) {
      auto s = ScoreNow(p, t.answer);
      if (!s.ok()) return s.status();
      out->push_back(ReachCheck{TokenAccuracy(*s), s->route_expert == t.expected_expert});
    }
    return absl::OkStatus();
  }

  // Prompts that must be left alone (hard_loc, rel_spec), against their unedited argmax.
  absl::Status ScoreLeftAlone(const std::vector<PromptAnswer>& prompts, const StreamEdit& e, const char* field,
                              std::vector<LeftAloneCheck>* out) {
    for (const PromptAnswer& p : prompts) {
      auto s = ScoreNow(p.prompt, p.answer);
      if (!s.ok()) return s.status();
      auto check = CheckLeftAlone(*s, original_argmax_.at({p.prompt, p.answer}));
      if (!check.ok())
        return absl::Status(check.status().code(), absl::StrCat("qid ", e.qid, ": ", field, ": ", check.status().message()));
      out->push_back(*check);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<QuestionEval>> Evaluate(const std::vector<EvalTarget>& targets, bool with_em,
                                                     const std::string& label) {
    Progress progress(label, static_cast<int>(targets.size()), opt_.progress && !label.empty());
    std::vector<QuestionEval> out;
    for (const EvalTarget& t : targets) {
      const StreamEdit& e = *t.edit;
      QuestionEval q;
      q.qid = e.qid;
      q.answer = t.answer;
      q.expected_expert = t.expected_expert;
      auto rs = ScoreNow(e.question, t.answer);
      if (!rs.ok()) return rs.status();
      q.rel = TokenAccuracy(*rs);
      q.routed_expert = rs->route_expert;
      if (!e.rephrase.empty()) {
        auto gs = ScoreNow(e.rephrase, t.answer);
        if (!gs.ok()) return gs.status();
        q.gen = TokenAccuracy(*gs);
        q.gen_routed_expert = gs->route_expert;
      }
      const Baseline& b = baseline_.at(e.qid);
      if (!e.loc.empty() && b.loc_argmax) {
        auto ls = ScoreNow(e.loc, e.loc_ans);
        if (!ls.ok()) return ls.status();
        auto agree = LocalityAgreement(ls->argmax_tokens, *b.loc_argmax);
        if (!agree.ok())
          return absl::Status(agree.status().code(), absl::StrCat("qid ", e.qid, ": ", agree.status().message()));
        q.loc = *agree;
        q.loc_routed_expert = ls->route_expert;
      }
      if (auto s = ScoreLeftAlone(e.hard_loc, e, "hard_loc", &q.hard_loc); !s.ok()) return s;
      if (auto s = ScoreLeftAlone(e.rel_spec, e, "rel_spec", &q.rel_spec); !s.ok()) return s;
      if (auto s = ScoreReach(e.reworded, t, &q.reworded); !s.ok()) return s;
      if (auto s = ScoreReach(PromptsOf(e.aliases), t, &q.aliases); !s.ok()) return s;
      if (with_em) {
        moke::v1::AskRequest ask;
        ask.set_question(e.question);
        ask.set_max_new_tokens(std::max<int>(1, static_cast<int>(rs->answer_tokens.size())));
        ask.set_min_version(last_version_);
        ask.set_routing(opt_.routing);
        auto gen = client_->Ask(ask);
        if (!gen.ok()) return gen.status();
        q.generated = gen->answer();
        q.em = ExactMatch(q.generated, t.answer);
        // EM free: no length hint (0 = the server's default); the answer must end by itself.
        ask.set_max_new_tokens(0);
        auto free = client_->Ask(ask);
        if (!free.ok()) return free.status();
        q.generated_free = free->answer();
        q.em_free = ExactMatch(q.generated_free, t.answer);
        q.stop_eos = free->stop_reason() == moke::v1::STOP_END_OF_ANSWER;
      }
      out.push_back(std::move(q));
      progress.Update(static_cast<int>(out.size()));
    }
    return out;
  }

  absl::Status WriteResults(bool complete) {
    json j;
    j["complete"] = complete;
    j["error"] = error_.empty() ? json(nullptr) : json(error_);
    int max_answers = 0;
    for (const StreamQuestion& q : questions_) max_answers = std::max(max_answers, q.num_answers);
    j["stream"] = {{"name", stream_.name},
                   {"path", opt_.stream_path},
                   {"questions", questions_.size()},
                   {"edits", stream_.edits.size()},
                   {"max_answers_per_question", max_answers}};
    json server = {{"address", opt_.server}};
    if (server_status_) {
      server["method"] = server_status_->method();
      server["model"] = server_status_->model();
      server["device"] = server_status_->device();
      server["num_experts"] = server_status_->num_experts();
      server["edit_layer"] = server_status_->edit_layer();
      server["version_at_start"] = server_status_->version();
      server["edits_at_start"] = server_status_->edits_applied();
    }
    j["server"] = server;
    j["routing"] = RoutingName(opt_.routing);
    j["edits_applied"] = rows_.size();
    j["final_version"] = last_version_;

    double unedited_rel = 0;
    for (const auto& [qid, b] : baseline_) unedited_rel += b.unedited_rel;
    json metrics = final_summary_ ? SummaryJson(*final_summary_) : json(nullptr);
    if (final_summary_ && !baseline_.empty()) metrics["unedited_rel"] = unedited_rel / static_cast<double>(baseline_.size());
    j["metrics"] = metrics;

    std::vector<double> lat, apply;
    int new_concepts = 0;
    for (const EditRow& r : rows_) {
      lat.push_back(r.latency_s);
      apply.push_back(r.apply_s);
      new_concepts += r.new_concept;
    }
    const LatencySummary ls = SummarizeLatency(lat);
    const LatencySummary as = SummarizeLatency(apply);
    j["latency_s"] = {{"count", ls.count},   {"mean", ls.mean},       {"median", ls.median}, {"p95", ls.p95},
                      {"p99", ls.p99},       {"min", ls.min},         {"max", ls.max},       {"at_edit_10", Opt(ls.at_10)},
                      {"last", Opt(ls.last)}, {"total", ls.total},
                      {"edits_per_second", edit_wall_s_ > 0 ? json(static_cast<double>(rows_.size()) / edit_wall_s_) : json(nullptr)},
                      {"server_apply_median", as.median}, {"server_apply_p95", as.p95}};
    j["new_concepts"] = new_concepts;
    if (const RewordedReEdits re = ReEditsWordedOtherwise(); re.edits > 0)
      j["reedits_worded_otherwise"] = {{"edits", re.edits}, {"superseded", re.superseded}, {"earlier_wordings", re.wordings},
                                       {"earlier_wordings_accuracy", re.wordings > 0 ? json(re.accuracy) : json(nullptr)}};
    json curve = json::array();
    for (const CurvePoint& c : curve_) {
      json p = SummaryJson(c.summary);
      p["edits"] = c.edits;
      curve.push_back(p);
    }
    j["curve"] = curve;
    json per_q = json::array();
    for (size_t i = 0; i < final_evals_.size(); ++i) {
      const QuestionEval& q = final_evals_[i];
      const StreamEdit& e = stream_.edits[questions_[i].final_index];  // final_evals_ follows questions_
      json p = {{"qid", q.qid},
                {"answer", q.answer},
                {"expected_expert", q.expected_expert},
                {"routed_expert", q.routed_expert},
                {"loc_routed_expert", Opt(q.loc_routed_expert)},
                {"gen_routed_expert", Opt(q.gen_routed_expert)},
                {"rel", q.rel},
                {"gen", Opt(q.gen)},
                {"loc", Opt(q.loc)},
                {"em", Opt(q.em)},
                {"generated", q.generated},
                {"em_free", Opt(q.em_free)},
                {"stop_eos", Opt(q.stop_eos)},
                {"generated_free", q.generated_free},
                {"hard_loc", LeftAloneJson(e.hard_loc, q.hard_loc)},
                {"rel_spec", LeftAloneJson(e.rel_spec, q.rel_spec)},
                {"reworded", ReachJson(e.reworded, q.reworded)},
                {"aliases", ReachJson(PromptsOf(e.aliases), q.aliases)}};
      if (auto it = baseline_.find(q.qid); it != baseline_.end()) p["unedited_rel"] = it->second.unedited_rel;
      per_q.push_back(p);
    }
    j["per_question"] = per_q;
    j["files"] = {{"per_edit_csv", "per_edit.csv"}, {"plot", plot_path_.empty() ? json(nullptr) : json("bench.png")}};

    const std::string tmp = results_path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp));
      out << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
      if (!out) return absl::DataLossError(absl::StrCat("write failed: ", tmp));
    }
    std::error_code ec;
    std::filesystem::rename(tmp, results_path_, ec);
    if (ec) return absl::DataLossError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
    return absl::OkStatus();
  }

  // Re-edits worded otherwise (issue 14): edits of a fact in other words than its previous edit, how many
  // of them the server said superseded an edit, and how the fact's earlier wordings (scored among its
  // `reworded` prompts) are answered after the stream with its final answer.
  struct RewordedReEdits {
    int edits = 0, superseded = 0, wordings = 0;
    double accuracy = 0;  // mean over the earlier wordings
  };
  RewordedReEdits ReEditsWordedOtherwise() const {
    RewordedReEdits r;
    std::map<std::string, std::set<std::string>> asked;  // qid -> its edits' questions
    std::map<std::string, const std::string*> previous;
    for (size_t i = 0; i < rows_.size() && i < stream_.edits.size(); ++i) {
      const StreamEdit& e = stream_.edits[i];
      asked[e.qid].insert(e.question);
      if (auto it = previous.find(e.qid); it != previous.end() && *it->second != e.question) {
        ++r.edits;
        r.superseded += rows_[i].superseded_edit_id != 0;
      }
      previous[e.qid] = &e.question;
    }
    for (size_t i = 0; i < final_evals_.size(); ++i) {
      const StreamEdit& e = stream_.edits[questions_[i].final_index];
      const std::set<std::string>& questions = asked[e.qid];
      for (size_t k = 0; k < e.reworded.size() && k < final_evals_[i].reworded.size(); ++k) {
        if (e.reworded[k] == e.question || !questions.count(e.reworded[k])) continue;
        ++r.wordings;
        r.accuracy += final_evals_[i].reworded[k].accuracy;
      }
    }
    if (r.wordings > 0) r.accuracy /= r.wordings;
    return r;
  }

  void PrintTable() const {
    const Summary& s = *final_summary_;
    int min_answers = INT_MAX, max_answers = 0;
    for (const StreamQuestion& q : questions_) {
      min_answers = std::min(min_answers, q.num_answers);
      max_answers = std::max(max_answers, q.num_answers);
    }
    std::cout << "\nmoke-bench: " << stream_.name << ": " << questions_.size() << " questions x "
              << (min_answers == max_answers ? "" : absl::StrCat(min_answers, "-")) << max_answers
              << " answers = " << stream_.edits.size() << " edits";
    if (server_status_)
      std::cout << " (method " << server_status_->method() << ", model " << server_status_->model() << ", device "
                << server_status_->device() << ", routing " << RoutingName(opt_.routing) << ")";
    std::cout << "\n\n| Rel. | Gen. | Loc. | Route | EM |\n|---|---|---|---|---|\n"
              << absl::StrFormat("| %.2f | %s | %s | %.2f | %s |\n", s.rel, Fmt(s.gen), Fmt(s.loc), s.route, Fmt(s.em))
              << "\nscope: hard locality (route, answer) and Rel. spec. must be left alone; Gen. reworded and "
                 "aliases must get the final answer; EM free is EM without a length hint\n\n"
              << "| Hard loc. | (route, answer) | Rel. spec. | Gen. reworded | (route) | Aliases | (route) | EM free | "
                 "Stop EOS |\n|---|---|---|---|---|---|---|---|---|\n"
              << absl::StrFormat("| %s | (%s, %s) | %s | %s | (%s) | %s | (%s) | %s | %s |\n", Fmt(s.hard_loc.both),
                                 Fmt(s.hard_loc.route), Fmt(s.hard_loc.answer), Fmt(s.rel_spec.both),
                                 Fmt(s.reworded.accuracy), Fmt(s.reworded.route), Fmt(s.aliases.accuracy),
                                 Fmt(s.aliases.route), Fmt(s.em_free), Fmt(s.stop_eos))
              << absl::StrFormat("(prompts: hard_loc %d, rel_spec %d, reworded %d, aliases %d)\n", s.hard_loc.count,
                                 s.rel_spec.count, s.reworded.count, s.aliases.count);
    if (const RewordedReEdits re = ReEditsWordedOtherwise(); re.edits > 0)
      std::cout << absl::StrFormat("re-edits worded otherwise: %d, of which %d superseded an edit; the facts' %d earlier "
                                   "wordings get the final answer: %s\n",
                                   re.edits, re.superseded, re.wordings, re.wordings > 0 ? Fmt(re.accuracy) : "n/a");
    double unedited_rel = 0;
    for (const auto& [qid, b] : baseline_) unedited_rel += b.unedited_rel;
    if (!baseline_.empty()) unedited_rel /= static_cast<double>(baseline_.size());
    std::vector<double> lat;
    for (const EditRow& r : rows_) lat.push_back(r.latency_s);
    const LatencySummary ls = SummarizeLatency(lat);
    std::cout << absl::StrFormat("\nrouting: questions %.2f, rephrases %s, locality prompts to the original weights %s\n",
                                 s.route_question, Fmt(s.route_rephrase), Fmt(s.route_loc))
              << absl::StrFormat("unedited Rel. %.2f\n", unedited_rel)
              << absl::StrFormat("edit latency: median %.3f s, p95 %.3f s, at edit 10 %s s, last %s s, %.2f edits/s\n\n",
                                 ls.median, ls.p95, ls.at_10 ? absl::StrFormat("%.3f", *ls.at_10) : "n/a",
                                 ls.last ? absl::StrFormat("%.3f", *ls.last) : "n/a",
                                 edit_wall_s_ > 0 ? static_cast<double>(rows_.size()) / edit_wall_s_ : 0.0);
  }

  RunOptions opt_;
  EditStream stream_;
  std::vector<StreamQuestion> questions_;
  std::unique_ptr<BenchClient> client_;
  std::optional<moke::v1::GetStatusResponse> server_status_;
  std::map<std::string, Baseline> baseline_;
  // The unedited model's argmax on every (prompt, answer) that must be left alone (hard_loc, rel_spec).
  std::map<std::pair<std::string, std::string>, std::vector<int64_t>> original_argmax_;
  std::map<std::string, int> latest_expert_;
  std::vector<EditRow> rows_;
  std::vector<CurvePoint> curve_;
  std::vector<QuestionEval> final_evals_;
  std::optional<Summary> final_summary_;
  uint64_t last_version_ = 0;
  double edit_wall_s_ = 0;
  std::string error_;
  std::string csv_path_, results_path_, plot_path_;
  std::ofstream csv_;
};

}  // namespace

absl::StatusOr<moke::v1::RoutingMode> ParseRoutingMode(absl::string_view name) {
  if (name == "default") return moke::v1::ROUTING_DEFAULT;
  if (name == "router") return moke::v1::ROUTING_ROUTER;
  if (name == "activation") return moke::v1::ROUTING_ACTIVATION;
  if (name == "activation_router" || name == "activation-router") return moke::v1::ROUTING_ACTIVATION_ROUTER;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown routing \"", name, "\" (expected default, router, activation or activation_router)"));
}

absl::Status RunBench(const RunOptions& options) {
  BenchRun run(options);
  return run.Run();
}

}  // namespace moke::bench
