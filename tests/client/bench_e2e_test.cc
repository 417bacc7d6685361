// End to end: the real moke-server on the embedded model (127.0.0.1, port 0, read back from --port-file),
// a 10-fact x 3-answer ZsRE stream built by moke-bench, `moke-bench run`, then results.json checked
// against per_edit.csv and the stream, and one hard-locality prompt and one free answer re-measured
// directly through the RPCs; a 3-question WikiCF stream for Relation_Specificity, aliases and paraphrase
// hints; a fact re-edited worded otherwise. Also: an unreachable server and a refused edit stop the run
// with the RPC status and leave partial results; the load mode runs (bounded) and writes load.json.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "client/bench/bench_client.h"
#include "client/bench/metrics.h"
#include "client/bench/stream.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/paths.h"

extern char** environ;

namespace moke::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kZsre[] = "data/zsre/zsre_mend_eval_portability_gpt4.json";
constexpr char kWikiGenerate[] = "data/wikicf/test_cf-generate-10.jsonl";

// Starts argv with stdout+stderr appended to `log`; returns the pid (or -1).
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Runs to completion (bounded by `timeout_s` through coreutils' timeout); returns the exit code.
int RunTool(std::vector<std::string> argv, const std::string& log, int timeout_s = 600) {
  argv.insert(argv.begin(), {"/usr/bin/timeout", "-k", "5", std::to_string(timeout_s)});
  const pid_t pid = Spawn(argv, log);
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::map<std::string, std::string>> ReadCsv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (header.empty()) {
      header = cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

// `moke-bench build-stream --one-per-fact` of the first t facts x p answers of `dataset` (ZsRE by
// default) into dir/name.jsonl.
std::string BuildStreamIn(const std::string& dir, const std::string& name, int t, int p,
                          const char* dataset = kZsre) {
  const std::string path = dir + "/" + name + ".jsonl";
  const int rc = RunTool({MOKE_BENCH_BIN, "build-stream", "--dataset", ::moke::testing::SharedDir() + "/" + dataset,
                          "--questions", std::to_string(t), "--answers", std::to_string(p), "--seed", "0",
                          "--one-per-fact", "--out", path},
                         dir + "/build.log", 60);
  EXPECT_EQ(rc, 0) << ReadFile(dir + "/build.log");
  return path;
}

class BenchE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!::moke::testing::HaveShared(kZsre)) return;
    dir_ = new std::string((fs::temp_directory_path() / ("moke_bench_e2e_" + std::to_string(getpid()))).string());
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    // Small edit settings keep the test bounded on two CPU cores.
    std::ofstream(*dir_ + "/config.json") << R"({"augment": false, "max_iterations": 30})";
    server_pid_ = Spawn({MOKE_SERVER_BIN, "--listen", "127.0.0.1:0", "--model", ::moke::testing::DefaultModelDir(),
                         "--data-dir", *dir_ + "/data", "--config", *dir_ + "/config.json", "--port-file",
                         *dir_ + "/port", "--log-level", "warn"},
                        *dir_ + "/server.log");
    ASSERT_GT(server_pid_, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(*dir_ + "/port") && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(server_pid_, &status, WNOHANG) == server_pid_) {
        server_pid_ = -1;
        FAIL() << "moke-server exited: " << ReadFile(*dir_ + "/server.log");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling a file the server writes
    }
    std::ifstream port_in(*dir_ + "/port");
    port_in >> port_;
    ASSERT_GT(port_, 0) << ReadFile(*dir_ + "/server.log");
    // Loading the model takes seconds (more on a busy machine): wait for GetStatus.serving here, so the
    // runs below measure the bench, not the start-up.
    ClientOptions copt;
    copt.server = "127.0.0.1:" + std::to_string(port_);
    auto client = BenchClient::Create(copt);
    ASSERT_TRUE(client.ok());
    const absl::Status serving = (*client)->WaitUntilServing(300);
    if (!serving.ok()) {
      port_ = 0;
      FAIL() << serving << "\n" << ReadFile(*dir_ + "/server.log");
    }
  }

  static void TearDownTestSuite() {
    if (server_pid_ > 0) {
      kill(server_pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && waitpid(server_pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (waitpid(server_pid_, &status, WNOHANG) == 0) {
        kill(server_pid_, SIGKILL);
        waitpid(server_pid_, &status, 0);
      }
      server_pid_ = -1;
    }
    if (dir_ != nullptr && !::testing::Test::HasFailure()) fs::remove_all(*dir_);
  }

  void SetUp() override {
    MOKE_REQUIRE_SHARED(kZsre);
    ASSERT_GT(port_, 0) << "the server did not start";
  }

  static std::string Server() { return "127.0.0.1:" + std::to_string(port_); }
  static std::string Dir() { return *dir_; }

  static std::string BuildStream(const std::string& name, int t, int p, const char* dataset = kZsre) {
    return BuildStreamIn(Dir(), name, t, p, dataset);
  }

  // Parts of the one server test (a server start costs seconds; ctest runs each TEST in its own process).
  static void CheckRun();
  static void CheckScopeChecks(const std::string& stream_path, const json& results);
  static void CheckWikiCf();
  static void CheckRefusedEdit();
  static void CheckRewordedReEdit();
  static void CheckLoad();

  static std::string* dir_;
  static pid_t server_pid_;
  static int port_;
};

std::string* BenchE2eTest::dir_ = nullptr;
pid_t BenchE2eTest::server_pid_ = -1;
int BenchE2eTest::port_ = 0;

bool InUnit(const json& v) { return v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 1; }

void BenchE2eTest::CheckRun() {
  const std::string stream = BuildStream("zsre-10x3", 10, 3);
  const std::string out = Dir() + "/run";
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", Server(), "--stream", stream, "--out", out,
                      "--eval-every", "10", "--no-progress"},
                     Dir() + "/run.log", 900);
  ASSERT_EQ(rc, 0) << ReadFile(Dir() + "/run.log") << ReadFile(Dir() + "/server.log");
  const std::string stdout_text = ReadFile(Dir() + "/run.log");
  EXPECT_NE(stdout_text.find("| Rel. | Gen. | Loc. | Route | EM |"), std::string::npos) << stdout_text;
  EXPECT_NE(stdout_text.find("| Hard loc. | (route, answer) | Rel. spec. | Gen. reworded |"), std::string::npos)
      << stdout_text;

  const json r = json::parse(ReadFile(out + "/results.json"));
  EXPECT_TRUE(r["complete"].get<bool>());
  EXPECT_EQ(r["stream"]["questions"], 10);
  EXPECT_EQ(r["stream"]["edits"], 30);
  EXPECT_EQ(r["stream"]["max_answers_per_question"], 3);
  EXPECT_EQ(r["edits_applied"], 30);
  for (const char* k : {"rel", "gen", "loc", "route", "route_question", "route_loc", "em", "unedited_rel"})
    EXPECT_TRUE(InUnit(r["metrics"][k])) << k << " = " << r["metrics"][k];
  ASSERT_EQ(r["curve"].size(), 3u);  // after 10 and 20 edits, and the final evaluation
  for (const json& p : r["curve"])
    for (const char* k : {"rel", "gen", "loc", "route"}) EXPECT_TRUE(InUnit(p[k])) << k;
  EXPECT_EQ(r["curve"][2]["edits"], 30);
  EXPECT_EQ(r["curve"][2]["rel"], r["metrics"]["rel"]);

  // per_edit.csv: one row per edit, in order, versions increasing, experts valid.
  const auto rows = ReadCsv(out + "/per_edit.csv");
  ASSERT_EQ(rows.size(), 30u);
  EXPECT_TRUE(rows[0].count("subject") && rows[0].count("superseded_edit_id"));
  std::map<std::string, int> final_expert;
  std::vector<double> lat;
  uint64_t prev_version = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(std::stoi(rows[i].at("step")), static_cast<int>(i + 1));
    EXPECT_EQ(rows[i].at("qid"), rows[i % 10].at("qid"));  // three rounds over the same 10 questions
    if (i > 0 && i < 10) EXPECT_LT(std::stoi(rows[i - 1].at("qid")), std::stoi(rows[i].at("qid")));
    const uint64_t version = std::stoull(rows[i].at("version"));
    EXPECT_GT(version, prev_version);
    prev_version = version;
    EXPECT_GE(std::stoi(rows[i].at("expert")), 0);
    EXPECT_EQ(rows[i].at("final"), i >= 20 ? "1" : "0");
    lat.push_back(std::stod(rows[i].at("latency_s")));
    if (rows[i].at("final") == "1") final_expert[rows[i].at("qid")] = std::stoi(rows[i].at("expert"));
  }
  EXPECT_EQ(r["final_version"].get<uint64_t>(), prev_version);
  const LatencySummary ls = SummarizeLatency(lat);
  EXPECT_NEAR(r["latency_s"]["median"].get<double>(), ls.median, 1e-5);
  EXPECT_NEAR(r["latency_s"]["p95"].get<double>(), ls.p95, 1e-5);
  EXPECT_NEAR(r["latency_s"]["at_edit_10"].get<double>(), lat[9], 1e-5);
  EXPECT_NEAR(r["latency_s"]["last"].get<double>(), lat[29], 1e-5);

  // per_question agrees with per_edit.csv (expected experts) and with the summary.
  ASSERT_EQ(r["per_question"].size(), 10u);
  double rel = 0;
  int routed_right = 0;
  for (const json& q : r["per_question"]) {
    const std::string qid = q["qid"];
    EXPECT_EQ(q["expected_expert"].get<int>(), final_expert.at(qid)) << qid;
    for (const char* k : {"rel", "gen", "loc", "unedited_rel"}) EXPECT_TRUE(InUnit(q[k])) << qid << " " << k;
    rel += q["rel"].get<double>();
    routed_right += q["routed_expert"] == q["expected_expert"];
  }
  EXPECT_NEAR(r["metrics"]["rel"].get<double>(), rel / 10, 1e-9);
  EXPECT_NEAR(r["metrics"]["route_question"].get<double>(), routed_right / 10.0, 1e-9);
  if (!r["files"]["plot"].is_null()) EXPECT_TRUE(fs::exists(out + "/bench.png"));
  // ZsRE's MEND file has neither Relation_Specificity nor aliases.
  EXPECT_TRUE(r["metrics"]["rel_spec"].is_null());
  EXPECT_TRUE(r["metrics"]["aliases"].is_null());
  EXPECT_EQ(r["metrics"]["em_free_count"], 10);
  ASSERT_NO_FATAL_FAILURE(CheckScopeChecks(stream, r));

  // One case re-measured directly: the first hard-locality prompt, against the unedited model, and the
  // first question's free answer (the server is deterministic: greedy, and no edit since the run).
  ClientOptions copt;
  copt.server = Server();
  auto client = BenchClient::Create(copt);
  ASSERT_TRUE(client.ok());
  auto parsed = ReadStreamFile(stream);
  ASSERT_TRUE(parsed.ok());
  const auto questions = StreamQuestions(*parsed);
  bool checked_hard_loc = false;
  for (size_t i = 0; i < questions.size() && !checked_hard_loc; ++i) {
    const StreamEdit& e = parsed->edits[questions[i].final_index];
    if (e.hard_loc.empty()) continue;
    moke::v1::ScoreRequest req;
    req.set_prompt(e.hard_loc[0].prompt);
    req.set_answer(e.hard_loc[0].answer);
    req.set_original_model(true);
    auto before = (*client)->Score(req);
    req.set_original_model(false);
    req.set_min_version(r["final_version"].get<uint64_t>());
    auto now = (*client)->Score(req);
    ASSERT_TRUE(before.ok() && now.ok());
    const bool routed_original = !now->has_route() || now->route().expert() == -1;
    const bool unchanged = std::equal(now->argmax_tokens().begin(), now->argmax_tokens().end(),
                                      before->argmax_tokens().begin(), before->argmax_tokens().end());
    const json& got = r["per_question"][i]["hard_loc"][0];
    EXPECT_EQ(got["prompt"], e.hard_loc[0].prompt);
    EXPECT_EQ(got["routed_original"].get<bool>(), routed_original) << e.hard_loc[0].prompt;
    EXPECT_EQ(got["unchanged"].get<bool>(), unchanged) << e.hard_loc[0].prompt;
    checked_hard_loc = true;
  }
  EXPECT_TRUE(checked_hard_loc);
  moke::v1::AskRequest ask;
  ask.set_question(parsed->edits[questions[0].final_index].question);
  ask.set_min_version(r["final_version"].get<uint64_t>());
  auto free = (*client)->Ask(ask);
  ASSERT_TRUE(free.ok()) << free.status();
  const json& q0 = r["per_question"][0];
  EXPECT_EQ(q0["generated_free"].get<std::string>(), free->answer());
  EXPECT_EQ(q0["em_free"].get<bool>(), ExactMatch(free->answer(), q0["answer"].get<std::string>()));
  EXPECT_EQ(q0["stop_eos"].get<bool>(), free->stop_reason() == moke::v1::STOP_END_OF_ANSWER);
}

// The scope-check columns of a run agree with its stream (how many prompts) and with per_question.
void BenchE2eTest::CheckScopeChecks(const std::string& stream_path, const json& r) {
  auto stream = ReadStreamFile(stream_path);
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::map<std::string, size_t> expected;  // prompts per check, over the questions' final edits
  for (const StreamQuestion& q : StreamQuestions(*stream)) {
    const StreamEdit& e = stream->edits[q.final_index];
    expected["hard_loc"] += e.hard_loc.size();
    expected["rel_spec"] += e.rel_spec.size();
    expected["reworded"] += e.reworded.size();
    expected["aliases"] += e.aliases.size();
  }
  const json& m = r["metrics"];
  for (const char* k : {"hard_loc", "rel_spec", "reworded", "aliases"}) {
    EXPECT_EQ(m[std::string(k) + "_count"].get<size_t>(), expected[k]) << k;
    size_t per_question = 0;
    for (const json& q : r["per_question"]) per_question += q[k].size();
    EXPECT_EQ(per_question, expected[k]) << k;
  }
  const auto check_left_alone = [&](const std::string& k) {
    if (expected[k] == 0) return;
    double both = 0, route = 0, answer = 0;
    for (const json& q : r["per_question"])
      for (const json& c : q[k]) {
        both += c["routed_original"].get<bool>() && c["unchanged"].get<bool>();
        route += c["routed_original"].get<bool>();
        answer += c["unchanged"].get<bool>();
      }
    const double n = static_cast<double>(expected[k]);
    EXPECT_NEAR(m[k].get<double>(), both / n, 1e-9) << k;
    EXPECT_NEAR(m[k + "_route"].get<double>(), route / n, 1e-9) << k;
    EXPECT_NEAR(m[k + "_answer"].get<double>(), answer / n, 1e-9) << k;
  };
  check_left_alone("hard_loc");
  check_left_alone("rel_spec");
  const auto check_reach = [&](const std::string& k, const std::string& value, const std::string& route_key) {
    if (expected[k] == 0) return;
    double accuracy = 0, route = 0;
    for (const json& q : r["per_question"])
      for (const json& c : q[k]) {
        EXPECT_TRUE(InUnit(c["accuracy"]));
        accuracy += c["accuracy"].get<double>();
        route += c["routed_expected"].get<bool>();
      }
    const double n = static_cast<double>(expected[k]);
    EXPECT_NEAR(m[value].get<double>(), accuracy / n, 1e-9) << k;
    EXPECT_NEAR(m[route_key].get<double>(), route / n, 1e-9) << k;
  };
  check_reach("reworded", "gen_reworded", "route_reworded");
  check_reach("aliases", "aliases", "route_aliases");
  for (const char* k : {"hard_loc", "hard_loc_route", "hard_loc_answer", "rel_spec", "rel_spec_route",
                        "rel_spec_answer", "gen_reworded", "route_reworded", "aliases", "route_aliases"})
    EXPECT_TRUE(m[k].is_null() || InUnit(m[k])) << k << " = " << m[k];
  EXPECT_TRUE(InUnit(m["em_free"])) << m["em_free"];
  EXPECT_TRUE(InUnit(m["stop_eos"])) << m["stop_eos"];
  int em_free = 0;
  for (const json& q : r["per_question"]) em_free += q["em_free"].get<bool>();
  EXPECT_NEAR(m["em_free"].get<double>(), em_free / static_cast<double>(r["per_question"].size()), 1e-9);
}

void BenchE2eTest::CheckWikiCf() {
  if (!::moke::testing::HaveShared(kWikiGenerate)) {  // the rest of the test still counts
    std::cout << "WikiCF part skipped: no ../shared/" << kWikiGenerate << "\n";
    return;
  }
  // Three WikiCF questions: Relation_Specificity, aliases, rewordings, and paraphrase hints sent with
  // the subject (the server must accept them).
  const std::string stream = BuildStream("wikicf-3x1", 3, 1, kWikiGenerate);
  auto parsed = ReadStreamFile(stream);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  size_t paraphrases = 0;
  for (const StreamEdit& e : parsed->edits) paraphrases += e.paraphrases.size();
  EXPECT_GT(paraphrases, 0u);
  const std::string out = Dir() + "/wikicf";
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", Server(), "--stream", stream, "--out", out, "--no-plot",
                          "--no-progress"},
                         Dir() + "/wikicf.log", 600);
  ASSERT_EQ(rc, 0) << ReadFile(Dir() + "/wikicf.log") << ReadFile(Dir() + "/server.log");
  const json r = json::parse(ReadFile(out + "/results.json"));
  EXPECT_TRUE(r["complete"].get<bool>());
  EXPECT_GT(r["metrics"]["rel_spec_count"].get<int>(), 0);
  EXPECT_GT(r["metrics"]["aliases_count"].get<int>(), 0);
  EXPECT_EQ(r["metrics"]["em_free_count"], 3);
  ASSERT_NO_FATAL_FAILURE(CheckScopeChecks(stream, r));
}

void BenchE2eTest::CheckRefusedEdit() {
  // Step 2's answer has more tokens than an edit may teach (max_answer_tokens, 32 by default), though it is
  // short enough to be scored: EditFact refuses it with INVALID_ARGUMENT.
  std::string long_answer;
  for (int i = 0; i < 30; ++i) long_answer += "one two three ";
  long_answer += "end";
  const std::string path = Dir() + "/refused.jsonl";
  {
    std::ofstream s(path);
    s << R"({"step":1,"qid":"a","question":"Who wrote the refusal test?","answer":"Ann","rephrase":"","loc":"","loc_ans":"","subject":"","final":true})"
      << "\n"
      << R"({"step":2,"qid":"b","question":"Who wrote the second test?","answer":")" << long_answer
      << R"(","rephrase":"","loc":"","loc_ans":"","subject":"","final":true})" << "\n";
  }
  const std::string out = Dir() + "/refused";
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", Server(), "--stream", path, "--out", out, "--retries", "0",
                      "--no-progress", "--no-plot"},
                     Dir() + "/refused.log", 300);
  EXPECT_EQ(rc, 1);
  const std::string log = ReadFile(Dir() + "/refused.log");
  EXPECT_NE(log.find("edit step 2"), std::string::npos) << log;
  EXPECT_NE(log.find("INVALID_ARGUMENT"), std::string::npos) << log;
  const json r = json::parse(ReadFile(out + "/results.json"));
  EXPECT_FALSE(r["complete"].get<bool>());
  EXPECT_EQ(r["edits_applied"], 1);
  EXPECT_EQ(ReadCsv(out + "/per_edit.csv").size(), 1u);
}

void BenchE2eTest::CheckRewordedReEdit() {
  // One fact edited, then re-edited worded otherwise: the server says the second edit superseded the
  // first, and the bench reports it with the earlier wording's score (one of the `reworded` prompts).
  const std::string path = Dir() + "/reworded.jsonl";
  const std::string first = "The name of the mother of Leonardo DiCaprio is";
  {
    std::ofstream s(path);
    s << R"({"step":1,"qid":"m","question":")" << first
      << R"(","answer":"Irmelin","rephrase":"","loc":"","loc_ans":"","subject":"Leonardo DiCaprio","reworded":[")"
      << first << R"("],"final":false})" << "\n"
      << R"({"step":2,"qid":"m","question":"Who is the mother of Leonardo DiCaprio?","answer":"Rosa","rephrase":"",)"
      << R"("loc":"","loc_ans":"","subject":"Leonardo DiCaprio","reworded":[")" << first << R"("],"final":true})" << "\n";
  }
  const std::string out = Dir() + "/reworded";
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", Server(), "--stream", path, "--out", out, "--no-progress",
                          "--no-plot", "--no-em"},
                         Dir() + "/reworded.log", 300);
  ASSERT_EQ(rc, 0) << ReadFile(Dir() + "/reworded.log") << ReadFile(Dir() + "/server.log");
  const auto rows = ReadCsv(out + "/per_edit.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("superseded_edit_id"), "0");
  EXPECT_EQ(rows[1].at("superseded_edit_id"), rows[0].at("edit_id"));
  const json r = json::parse(ReadFile(out + "/results.json"));
  const json& re = r["reedits_worded_otherwise"];
  EXPECT_EQ(re["edits"], 1);
  EXPECT_EQ(re["superseded"], 1);
  EXPECT_EQ(re["earlier_wordings"], 1);
  ASSERT_EQ(r["per_question"].size(), 1u);
  const json& w = r["per_question"][0]["reworded"];
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(re["earlier_wordings_accuracy"], w[0]["accuracy"]);
  EXPECT_NE(ReadFile(Dir() + "/reworded.log").find("re-edits worded otherwise: 1, of which 1 superseded"),
            std::string::npos)
      << ReadFile(Dir() + "/reworded.log");
}

void BenchE2eTest::CheckLoad() {
  const std::string stream = BuildStream("zsre-load-3x1", 3, 1);
  const std::string out = Dir() + "/load";
  const int rc = RunTool({MOKE_BENCH_BIN, "load", "--server", Server(), "--clients", "2", "--seconds", "2", "--stream",
                      stream, "--max-new-tokens", "4", "--out", out, "--no-progress"},
                     Dir() + "/load.log", 120);
  ASSERT_EQ(rc, 0) << ReadFile(Dir() + "/load.log");
  const json j = json::parse(ReadFile(out + "/load.json"));
  for (const char* phase : {"no_edits", "during_edits"}) {
    EXPECT_GT(j[phase]["ok"].get<int>(), 0) << phase;
    EXPECT_EQ(j[phase]["errors"].get<int>(), 0) << phase << ": " << j[phase]["first_error"];
    EXPECT_LE(j[phase]["p50_ms"].get<double>(), j[phase]["p95_ms"].get<double>());
    EXPECT_LE(j[phase]["p95_ms"].get<double>(), j[phase]["p99_ms"].get<double>());
  }
  EXPECT_GE(j["during_edits"]["edits_applied"].get<int>(), 1);
  // Not loopback: refused before anything is sent.
  EXPECT_EQ(RunTool({MOKE_BENCH_BIN, "load", "--server", "192.0.2.1:5000", "--seconds", "1"}, Dir() + "/load2.log", 30), 1);
  EXPECT_NE(ReadFile(Dir() + "/load2.log").find("loopback"), std::string::npos);
}

TEST_F(BenchE2eTest, RunRefusedEditAndLoadAgainstTheRealServer) {
  {
    SCOPED_TRACE("run 10 x 3");
    ASSERT_NO_FATAL_FAILURE(CheckRun());
  }
  {
    SCOPED_TRACE("WikiCF 3 x 1");
    ASSERT_NO_FATAL_FAILURE(CheckWikiCf());
  }
  {
    SCOPED_TRACE("refused edit");
    ASSERT_NO_FATAL_FAILURE(CheckRefusedEdit());
  }
  {
    SCOPED_TRACE("re-edit worded otherwise");
    ASSERT_NO_FATAL_FAILURE(CheckRewordedReEdit());
  }
  {
    SCOPED_TRACE("load");
    ASSERT_NO_FATAL_FAILURE(CheckLoad());
  }
}

// The failure paths that need no server.
class BenchCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MOKE_REQUIRE_SHARED(kZsre);
    dir_ = (fs::temp_directory_path() / ("moke_bench_cli_" + std::to_string(getpid()))).string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
  }
  const std::string& Dir() const { return dir_; }
  std::string dir_;
};

TEST_F(BenchCliTest, UnreachableServerStopsWithTheRpcStatus) {
  const std::string stream = BuildStreamIn(Dir(), "zsre-2x1", 2, 1);
  const std::string out = Dir() + "/unreachable";
  // Port 1 on loopback: nothing listens there.
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", "127.0.0.1:1", "--stream", stream, "--out", out,
                      "--connect-timeout", "1", "--no-progress", "--no-plot"},
                     Dir() + "/unreachable.log", 60);
  EXPECT_EQ(rc, 1);
  const std::string log = ReadFile(Dir() + "/unreachable.log");
  EXPECT_NE(log.find("UNAVAILABLE"), std::string::npos) << log;
  const json r = json::parse(ReadFile(out + "/results.json"));
  EXPECT_FALSE(r["complete"].get<bool>());
  EXPECT_EQ(r["edits_applied"], 0);
}

TEST_F(BenchCliTest, MalformedStreamStopsBeforeAnythingIsSent) {
  const std::string path = Dir() + "/bad.jsonl";
  std::ofstream(path) << R"({"step":1,"qid":0,"question":"q","answer":"a","rephrase":"","loc":"","loc_ans":"","subject":"","final":true})"
                      << "\n{\"step\":2,\n";
  const int rc = RunTool({MOKE_BENCH_BIN, "run", "--server", "127.0.0.1:1", "--stream", path, "--out", Dir() + "/bad",
                      "--no-progress", "--no-plot"},
                     Dir() + "/bad.log", 60);
  EXPECT_EQ(rc, 1);
  const std::string log = ReadFile(Dir() + "/bad.log");
  EXPECT_NE(log.find("bad.jsonl:2: malformed JSON"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(Dir() + "/bad/per_edit.csv"));
}

}  // namespace
}  // namespace moke::bench
