#include "client/bench/load.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/bench/bench_client.h"
#include "client/bench/metrics.h"
#include "client/bench/stream.h"
#include "nlohmann/json.hpp"

namespace moke::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct PhaseResult {
  std::vector<double> latencies_s;  // successful Asks
  int64_t errors = 0;
  std::string first_error;
  double wall_s = 0;
  int64_t edits_applied = 0;
  std::string edit_error;
  bool ran = false;
};

// Runs N Ask clients for `seconds`; when `stream` is set, one more thread applies its edits meanwhile.
PhaseResult RunPhase(const LoadOptions& opt, const std::vector<std::string>& questions, const EditStream* stream,
                     const std::string& id_prefix, const char* label) {
  PhaseResult result;
  result.ran = true;
  std::mutex mu;
  std::atomic<int64_t> requests{0};
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto end = start + std::chrono::microseconds(static_cast<int64_t>(opt.seconds * 1e6));
  std::vector<std::thread> threads;
  for (int c = 0; c < opt.clients; ++c) {
    threads.emplace_back([&, c] {
      ClientOptions copt;
      copt.server = opt.server;
      copt.token = opt.token;
      copt.read_timeout_s = opt.seconds + 30;
      copt.own_connection = true;  // N clients, N connections
      auto client = BenchClient::Create(copt);
      if (!client.ok()) return;
      std::vector<double> local;
      int64_t errors = 0;
      std::string first_error;
      for (size_t k = static_cast<size_t>(c); Clock::now() < end && !stop.load(); k += static_cast<size_t>(opt.clients)) {
        moke::v1::AskRequest req;
        req.set_question(questions[k % questions.size()]);
        req.set_max_new_tokens(opt.max_new_tokens);
        req.set_routing(opt.routing);
        const auto t = Clock::now();
        auto resp = (*client)->Ask(req);
        const double dt = std::chrono::duration<double>(Clock::now() - t).count();
        if (resp.ok()) {
          local.push_back(dt);
        } else {
          ++errors;
          if (first_error.empty()) first_error = std::string(resp.status().message());
        }
        requests.fetch_add(1);
      }
      std::lock_guard<std::mutex> lock(mu);
      result.latencies_s.insert(result.latencies_s.end(), local.begin(), local.end());
      result.errors += errors;
      if (result.first_error.empty()) result.first_error = first_error;
    });
  }
  std::atomic<int64_t> edits{0};
  std::thread editor;
  if (stream != nullptr) {
    editor = std::thread([&] {
      ClientOptions copt;
      copt.server = opt.server;
      copt.token = opt.token;
      copt.edit_timeout_s = opt.edit_timeout_s;
      copt.own_connection = true;
      auto client = BenchClient::Create(copt);
      if (!client.ok()) return;
      for (const StreamEdit& e : stream->edits) {
        if (Clock::now() >= end || stop.load()) break;
        moke::v1::EditFactRequest req;
        req.set_question(e.question);
        req.set_answer(e.answer);
        req.set_request_id(absl::StrCat(id_prefix, e.step));
        auto resp = (*client)->EditFact(req);
        if (!resp.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          result.edit_error = absl::StrCat("edit step ", e.step, " refused: ", resp.status().message());
          break;
        }
        edits.fetch_add(1);
      }
    });
  }
  const bool tty = opt.progress && isatty(STDERR_FILENO) != 0;
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    if (tty) {
      const double el = std::chrono::duration<double>(Clock::now() - start).count();
      std::fprintf(stderr, "\rload (%s): %.0f/%.0f s, %lld requests, %lld edits\033[K", label, std::min(el, opt.seconds),
                   opt.seconds, static_cast<long long>(requests.load()), static_cast<long long>(edits.load()));
      std::fflush(stderr);
    }
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  if (editor.joinable()) editor.join();  // waits for the edit in flight
  result.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  result.edits_applied = edits.load();
  if (tty) std::fprintf(stderr, "\n");
  else if (opt.progress)
    std::fprintf(stderr, "load (%s): %lld requests in %.1f s\n", label, static_cast<long long>(requests.load()),
                 result.wall_s);
  return result;
}

nlohmann::json PhaseJson(const PhaseResult& r) {
  if (!r.ran) return nullptr;
  const LatencySummary s = SummarizeLatency(r.latencies_s);
  return {{"requests", s.count + r.errors},
          {"ok", s.count},
          {"errors", r.errors},
          {"first_error", r.first_error},
          {"seconds", r.wall_s},
          {"throughput_rps", r.wall_s > 0 ? s.count / r.wall_s : 0.0},
          {"p50_ms", s.median * 1e3},
          {"p95_ms", s.p95 * 1e3},
          {"p99_ms", s.p99 * 1e3},
          {"mean_ms", s.mean * 1e3},
          {"edits_applied", r.edits_applied},
          {"edit_error", r.edit_error}};
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& opt) {
  if (!IsLoopbackAddress(opt.server))
    return absl::InvalidArgumentError(absl::StrCat("load mode only targets a loopback server (127.0.0.1:PORT, "
                                                   "localhost:PORT or [::1]:PORT); refusing \"", opt.server, "\""));
  if (opt.clients < 1 || opt.clients > kMaxClients)
    return absl::InvalidArgumentError(absl::StrCat("--clients must be in [1, ", kMaxClients, "], got ", opt.clients));
  if (!(opt.seconds >= 1 && opt.seconds <= kMaxSeconds))
    return absl::InvalidArgumentError(absl::StrCat("--seconds must be in [1, ", kMaxSeconds, "], got ", opt.seconds));
  if (opt.max_new_tokens < 1 || opt.max_new_tokens > 256)
    return absl::InvalidArgumentError("--max-new-tokens must be in [1, 256]");
  if (!opt.baseline.empty()) {
    if (!IsLoopbackAddress(opt.baseline))
      return absl::InvalidArgumentError(absl::StrCat("--baseline: only a loopback server; refusing \"", opt.baseline, "\""));
    if (!opt.stream_path.empty())
      return absl::InvalidArgumentError("--baseline compares the no-edit phase only; drop --stream");
    if (opt.rounds < 1 || opt.rounds > kMaxRounds)
      return absl::InvalidArgumentError(absl::StrCat("--rounds must be in [1, ", kMaxRounds, "], got ", opt.rounds));
  }
  return absl::OkStatus();
}

namespace {

// Adds `b` into `a` (latencies, errors, wall time).
void Accumulate(PhaseResult* a, const PhaseResult& b) {
  a->ran = true;
  a->latencies_s.insert(a->latencies_s.end(), b.latencies_s.begin(), b.latencies_s.end());
  a->errors += b.errors;
  if (a->first_error.empty()) a->first_error = b.first_error;
  a->wall_s += b.wall_s;
}

// --baseline: the no-edit phase against both servers, in turns, `rounds` times.
absl::Status RunComparison(const LoadOptions& opt, const std::vector<std::string>& questions) {
  LoadOptions base_opt = opt;
  base_opt.server = opt.baseline;
  for (const LoadOptions* o : {static_cast<const LoadOptions*>(&base_opt), &opt}) {
    ClientOptions copt;
    copt.server = o->server;
    copt.token = o->token;
    auto client = BenchClient::Create(copt);
    if (!client.ok()) return client.status();
    if (auto s = (*client)->WaitUntilServing(opt.connect_timeout_s); !s.ok()) return s;
  }
  PhaseResult base, main;
  for (int r = 0; r < opt.rounds; ++r) {
    Accumulate(&base, RunPhase(base_opt, questions, nullptr, "", "baseline"));
    Accumulate(&main, RunPhase(opt, questions, nullptr, "", "server"));
  }
  const LatencySummary a = SummarizeLatency(base.latencies_s), b = SummarizeLatency(main.latencies_s);
  const double base_rps = base.wall_s > 0 ? a.count / base.wall_s : 0.0;
  const double main_rps = main.wall_s > 0 ? b.count / main.wall_s : 0.0;
  const double ratio = base_rps > 0 ? main_rps / base_rps : 0.0;
  std::cout << absl::StrFormat("\nAsk under load, two servers in turns: %d clients, %d x %.0f s each, max_new_tokens %d\n\n",
                               opt.clients, opt.rounds, opt.seconds, opt.max_new_tokens)
            << absl::StrFormat("| %-20s | %21s | %21s |\n", "", "baseline " + opt.baseline, "server " + opt.server)
            << "|----------------------|-----------------------|-----------------------|\n";
  const auto row = [&](const char* name, const std::string& x, const std::string& y) {
    std::cout << absl::StrFormat("| %-20s | %21s | %21s |\n", name, x, y);
  };
  row("requests ok", absl::StrCat(a.count), absl::StrCat(b.count));
  row("errors", absl::StrCat(base.errors), absl::StrCat(main.errors));
  row("throughput (req/s)", absl::StrFormat("%.1f", base_rps), absl::StrFormat("%.1f", main_rps));
  row("p50 (ms)", absl::StrFormat("%.1f", a.median * 1e3), absl::StrFormat("%.1f", b.median * 1e3));
  row("p95 (ms)", absl::StrFormat("%.1f", a.p95 * 1e3), absl::StrFormat("%.1f", b.p95 * 1e3));
  row("p99 (ms)", absl::StrFormat("%.1f", a.p99 * 1e3), absl::StrFormat("%.1f", b.p99 * 1e3));
  std::cout << absl::StrFormat("\nthroughput ratio server / baseline: %.2fx; p99 ratio: %.2f\n", ratio,
                               a.p99 > 0 ? b.p99 / a.p99 : 0.0);
  if (!base.first_error.empty()) std::cerr << "moke-bench: first Ask error (baseline): " << base.first_error << "\n";
  if (!main.first_error.empty()) std::cerr << "moke-bench: first Ask error (server): " << main.first_error << "\n";
  if (!opt.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.out_dir, ec);
    const std::string path = (std::filesystem::path(opt.out_dir) / "load.json").string();
    std::ofstream out(path, std::ios::trunc);
    nlohmann::json j = {{"server", opt.server},          {"baseline", opt.baseline},
                        {"clients", opt.clients},        {"seconds", opt.seconds},
                        {"rounds", opt.rounds},          {"max_new_tokens", opt.max_new_tokens},
                        {"baseline_phase", PhaseJson(base)}, {"server_phase", PhaseJson(main)},
                        {"throughput_ratio", ratio}};
    out << j.dump(2) << "\n";
    if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
    std::cout << "results: " << path << "\n";
  }
  if (a.count == 0 || b.count == 0) return absl::UnavailableError("no Ask succeeded on one of the servers");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunLoad(const LoadOptions& opt) {
  if (auto s = ValidateLoadOptions(opt); !s.ok()) return s;
  std::optional<EditStream> stream;
  std::vector<std::string> questions;
  if (!opt.stream_path.empty()) {
    auto parsed = ReadStreamFile(opt.stream_path);  // a bad stream stops here, before anything is sent
    if (!parsed.ok()) return parsed.status();
    stream = *std::move(parsed);
    if (!opt.name.empty()) stream->name = opt.name;
    for (const StreamQuestion& q : StreamQuestions(*stream)) questions.push_back(stream->edits[q.final_index].question);
  } else {
    questions = {"Once upon a time, there was a", "What is the capital of France?", "Who wrote Hamlet?",
                 "The little dog liked to"};
  }
  if (!opt.baseline.empty()) return RunComparison(opt, questions);
  ClientOptions copt;
  copt.server = opt.server;
  copt.token = opt.token;
  auto client = BenchClient::Create(copt);
  if (!client.ok()) return client.status();
  if (auto s = (*client)->WaitUntilServing(opt.connect_timeout_s); !s.ok()) return s;

  const PhaseResult quiet = RunPhase(opt, questions, nullptr, "", "no edits");
  PhaseResult busy;
  if (stream) {
    // A fresh id per run: the stream is applied again (a retry inside the run stays idempotent).
    const std::string prefix = absl::StrCat("load:", stream->name, ":",
                                            std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch()).count(), ":");
    busy = RunPhase(opt, questions, &*stream, prefix, "during edits");
  }

  const LatencySummary a = SummarizeLatency(quiet.latencies_s);
  const LatencySummary b = SummarizeLatency(busy.latencies_s);
  const auto col = [&](const PhaseResult& r, const std::string& v) { return r.ran ? v : std::string("-"); };
  std::cout << absl::StrFormat("\nAsk under load: %d clients, %.0f s per phase, max_new_tokens %d, server %s\n\n",
                               opt.clients, opt.seconds, opt.max_new_tokens, opt.server)
            << absl::StrFormat("| %-20s | %12s | %12s |\n", "", "no edits", "during edits")
            << "|----------------------|--------------|--------------|\n";
  const auto row = [&](const char* name, const std::string& x, const std::string& y) {
    std::cout << absl::StrFormat("| %-20s | %12s | %12s |\n", name, x, y);
  };
  row("requests ok", absl::StrCat(a.count), col(busy, absl::StrCat(b.count)));
  row("errors", absl::StrCat(quiet.errors), col(busy, absl::StrCat(busy.errors)));
  row("throughput (req/s)", absl::StrFormat("%.1f", quiet.wall_s > 0 ? a.count / quiet.wall_s : 0.0),
      col(busy, absl::StrFormat("%.1f", busy.wall_s > 0 ? b.count / busy.wall_s : 0.0)));
  row("p50 (ms)", absl::StrFormat("%.1f", a.median * 1e3), col(busy, absl::StrFormat("%.1f", b.median * 1e3)));
  row("p95 (ms)", absl::StrFormat("%.1f", a.p95 * 1e3), col(busy, absl::StrFormat("%.1f", b.p95 * 1e3)));
  row("p99 (ms)", absl::StrFormat("%.1f", a.p99 * 1e3), col(busy, absl::StrFormat("%.1f", b.p99 * 1e3)));
  row("edits applied", "-", col(busy, absl::StrCat(busy.edits_applied)));
  if (!stream) std::cout << "\n(no --stream: the \"during edits\" phase was not run)\n";
  if (!quiet.first_error.empty()) std::cerr << "moke-bench: first Ask error (no edits): " << quiet.first_error << "\n";
  if (!busy.first_error.empty()) std::cerr << "moke-bench: first Ask error (during edits): " << busy.first_error << "\n";

  if (!opt.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.out_dir, ec);
    const std::string path = (std::filesystem::path(opt.out_dir) / "load.json").string();
    std::ofstream out(path, std::ios::trunc);
    nlohmann::json j = {{"server", opt.server},       {"clients", opt.clients},
                        {"seconds", opt.seconds},     {"max_new_tokens", opt.max_new_tokens},
                        {"stream", opt.stream_path},  {"no_edits", PhaseJson(quiet)},
                        {"during_edits", PhaseJson(busy)}};
    out << j.dump(2) << "\n";
    if (!out) return absl::DataLossError(absl::StrCat("cannot write ", path));
    std::cout << "results: " << path << "\n";
  }
  if (!busy.edit_error.empty()) return absl::AbortedError(busy.edit_error);
  if (a.count == 0) return absl::UnavailableError(absl::StrCat("no Ask succeeded: ", quiet.first_error));
  return absl::OkStatus();
}

}  // namespace moke::bench
