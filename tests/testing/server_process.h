// One moke-server child process on 127.0.0.1 (port 0, read back from --port-file), for tests of the real
// binary. Output goes to a log file (LogText). Every wait is bounded; the destructor SIGKILLs a child
// that is still running.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "moke/v1/moke.grpc.pb.h"
#include "tests/testing/grpc_client.h"

extern char** environ;

namespace moke::testing {

class ServerProcess {
 public:
  // Starts `binary` with --listen 127.0.0.1:0, --metrics-listen "", --data-dir, --port-file and `args`.
  // `work_dir` holds the port file and the log; `n` tells this start's files apart.
  ServerProcess(const std::string& binary, const std::string& data_dir, const std::string& work_dir, int n,
                std::vector<std::string> args) {
    port_file_ = work_dir + "/ports-" + std::to_string(n);
    log_ = work_dir + "/server-" + std::to_string(n) + ".log";
    std::vector<std::string> all = {binary, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", data_dir,
                                    "--port-file", port_file_};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~ServerProcess() { Kill(SIGKILL); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for the port file (the server listens; written before the model load starts); false when the
  // process exits or `end` passes.
  bool WaitListening(std::chrono::steady_clock::time_point end) {
    while (port_ == 0 && std::chrono::steady_clock::now() < end && alive()) {
      std::ifstream in(port_file_);
      in >> port_;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return port_ != 0;
  }
  // Waits for the port file and for health SERVING; false when the process exits or `timeout` passes.
  bool WaitReady(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    if (!WaitListening(end)) return false;
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
    stub_ = moke::v1::KnowledgeEditor::NewStub(channel_);
    while (std::chrono::steady_clock::now() < end && alive()) {
      if (HealthStatus(channel_) == grpc::health::v1::HealthCheckResponse::SERVING) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // Waits (bounded) for the process to exit by itself; its wait status, or -1 if it is still running.
  int WaitExit(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (alive() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return pid_ > 0 ? -1 : exit_status_;
  }
  bool alive() {
    if (pid_ <= 0) return false;
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      exit_status_ = st;
      pid_ = -1;
      return false;
    }
    return true;
  }
  // Sends `sig` and waits (bounded; then SIGKILL) for the exit; returns the wait status.
  int Kill(int sig, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, sig);
    if (WaitExit(timeout) == -1) {
      kill(pid_, SIGKILL);
      int st;
      waitpid(pid_, &st, 0);
      exit_status_ = st;
      pid_ = -1;
    }
    return exit_status_;
  }
  std::string LogText() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  moke::v1::KnowledgeEditor::Stub& stub() { return *stub_; }

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
  int port_ = 0;
  std::string port_file_, log_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<moke::v1::KnowledgeEditor::Stub> stub_;
};

}  // namespace moke::testing
