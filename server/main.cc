// moke-server: the knowledge-editing gRPC service. See server/server_options.h for the flags.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "core/common/process_tuning.h"
#include "core/editor/editor_options.h"
#include "core/model/blas_check.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

namespace {

// SIGTERM/SIGINT: the handler writes one byte to a pipe that the main thread waits on. (A sigmask +
// sigwait design misses signals delivered to threads that libraries start before main().)
int g_signal_pipe[2] = {-1, -1};

void OnStopSignal(int sig) {
  const char c = static_cast<char>(sig);
  (void)!write(g_signal_pipe[1], &c, 1);
}

bool WritePortFile(const std::string& path, int grpc_port, int metrics_port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << grpc_port << "\n" << metrics_port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

// Logs the process settings that decide speed: malloc policy, OpenMP/BLAS waiting, CPUs, BLAS library.
void LogProcessSettings(const std::string& process_settings) {
  spdlog::info("process: {}; {} usable CPUs", process_settings, moke::UsableCpus());
  absl::StatusOr<moke::BlasLibrary> blas = moke::LinkedBlas();
  if (!blas.ok()) {
    spdlog::warn("BLAS: {}", std::string(blas.status().message()));
  } else if (absl::Status s = moke::CheckBlasLibrary(*blas); !s.ok()) {
    spdlog::warn("BLAS: {}", std::string(s.message()));
  } else {
    spdlog::info("BLAS: {} ({})", blas->path, blas->config);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // First: the OpenMP/BLAS waiting policy (may re-execute this program so that the runtimes see it) and
  // the malloc policy.
  const std::string process_settings = moke::ConfigureProcess(argv);

  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  moke::server::ServerOptions options;
  CLI::App app{"moke-server: knowledge editing (MoKE) over gRPC"};
  moke::server::AddServerFlags(app, &options);
  bool help_config = false, help_config_markdown = false;
  app.add_flag("--help-config", help_config, "Print every key of the --config file (type, default, range, help) and exit");
  app.add_flag("--help-config-markdown", help_config_markdown, "The same as a Markdown table (the README's) and exit");
  CLI11_PARSE(app, argc, argv);
  if (help_config || help_config_markdown) {
    std::fputs((help_config ? moke::EditorSettingsText() : moke::EditorSettingsMarkdown()).c_str(), stdout);
    return 0;
  }

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");
  if (absl::Status s = moke::server::FinalizeServerOptions(&options); !s.ok()) {
    spdlog::error("bad configuration: {}", std::string(s.message()));
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  LogProcessSettings(process_settings);

  absl::StatusOr<std::unique_ptr<moke::server::Server>> server = moke::server::Server::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", std::string(server.status().message()));
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!options.port_file.empty() && !WritePortFile(options.port_file, (*server)->port(), (*server)->metrics_port())) {
    spdlog::error("--port-file: cannot write {}", options.port_file);
    return 1;
  }

  // The model loads (and the log replays) on a thread of its own while this one waits for whichever
  // comes first: the end of loading, or a stop signal.
  int loaded_pipe[2] = {-1, -1};
  if (pipe2(loaded_pipe, O_CLOEXEC) != 0) return 1;
  absl::Status load_status;
  std::thread loader([&] {
    load_status = (*server)->LoadAndServe();
    const char c = 1;
    (void)!write(loaded_pipe[1], &c, 1);
  });
  pollfd fds[2] = {{g_signal_pipe[0], POLLIN, 0}, {loaded_pipe[0], POLLIN, 0}};
  while (poll(fds, 2, -1) < 0 && errno == EINTR) {
  }
  if ((fds[1].revents & POLLIN) == 0) {
    // Stopped during start-up. Loading cannot be interrupted and nothing is served yet: end the process
    // now rather than after a load that may take minutes. This is as safe as a SIGKILL at the same
    // moment, which storage is built for (start-up writes nothing but the truncation of a torn log tail).
    char sig = 0;
    (void)!read(g_signal_pipe[0], &sig, 1);
    spdlog::info("signal {} received during start-up: stopping without waiting for the model to load",
                 static_cast<int>(sig));
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    _exit(0);
  }
  loader.join();
  if (!load_status.ok()) {
    spdlog::error("cannot serve: {}", std::string(load_status.message()));
    (*server)->Shutdown(false);
    return 1;
  }
  char sig = 0;
  while (read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  spdlog::info("signal {} received: draining the queue, writing a snapshot, stopping", static_cast<int>(sig));
  (*server)->Shutdown(/*write_snapshot=*/true);
  spdlog::info("stopped");
  return 0;
}
