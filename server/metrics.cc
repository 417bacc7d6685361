#include "server/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"
#include "spdlog/spdlog.h"

namespace moke::server {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

namespace {
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}
}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  requests_ = &BuildCounter().Name("moke_requests_total").Help("RPCs handled, by rpc and outcome").Register(r);
  edit_latency_ = &BuildHistogram()
                       .Name("moke_edit_duration_seconds")
                       .Help("EditFact time from dequeue to durable (apply + log append + fsync)")
                       .Register(r)
                       .Add({}, LatencyBuckets());
  ask_latency_family_ =
      &BuildHistogram().Name("moke_read_duration_seconds").Help("Ask and Score time on a worker, by rpc").Register(r);
  queue_wait_ = &BuildHistogram()
                     .Name("moke_edit_queue_wait_seconds")
                     .Help("Time an edit waited in the queue before the editor thread took it")
                     .Register(r)
                     .Add({}, LatencyBuckets());
  queue_depth_ = &BuildGauge().Name("moke_edit_queue_depth").Help("Edits waiting in the queue").Register(r).Add({});
  edit_expert_ = &BuildCounter().Name("moke_edit_expert_total").Help("Applied edits by the expert that learned them").Register(r);
  ask_route_ = &BuildCounter()
                    .Name("moke_ask_route_total")
                    .Help("Asks by where they were routed (expert index, or \"original\" for the unedited weights)")
                    .Register(r);
  version_ = &BuildGauge().Name("moke_knowledge_version").Help("Latest published knowledge version").Register(r).Add({});
  edits_applied_ = &BuildGauge().Name("moke_edits_applied").Help("Edits in the current knowledge state").Register(r).Add({});
  replay_ = &BuildGauge().Name("moke_replay_buffer_size").Help("Edits held in the replay buffer").Register(r).Add({});
  memory_ = &BuildGauge().Name("moke_memory_bytes").Help("Memory held by the editor, by part").Register(r);
  serving_ = &BuildGauge().Name("moke_serving").Help("1 when the model is loaded and replay is done").Register(r).Add({});
  log_bytes_ = &BuildGauge().Name("moke_edit_log_bytes").Help("Size of the edit log file").Register(r).Add({});
  follower_lag_ = &BuildGauge()
                       .Name("moke_follower_lag_versions")
                       .Help("Follower: the editor's version as last heard minus the version served here (0 on an editor)")
                       .Register(r)
                       .Add({});
  follower_connected_ = &BuildGauge()
                             .Name("moke_follower_connected")
                             .Help("Follower: 1 while the stream from the editor is up (0 on an editor)")
                             .Register(r)
                             .Add({});
  batch_rows_ = &BuildHistogram()
                     .Name("moke_decode_batch_rows")
                     .Help("Answers decoded together per step of the batched decoder")
                     .Register(r)
                     .Add({}, Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256});
}

void Metrics::CountRequest(const std::string& rpc, const std::string& outcome) {
  requests_->Add({{"rpc", rpc}, {"outcome", outcome}}).Increment();
}

void Metrics::ObserveAskSeconds(const std::string& rpc, double s) {
  ask_latency_family_->Add({{"rpc", rpc}}, LatencyBuckets()).Observe(s);
}

void Metrics::CountEditExpert(int expert) { edit_expert_->Add({{"expert", absl::StrCat(expert)}}).Increment(); }

void Metrics::CountAskRoute(int expert) {
  ask_route_->Add({{"expert", expert < 0 ? std::string("original") : absl::StrCat(expert)}}).Increment();
}

void Metrics::SetMemoryBytes(const std::map<std::string, int64_t>& bytes) {
  for (const auto& [part, n] : bytes) memory_->Add({{"part", part}}).Set(static_cast<double>(n));
}

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

// ---- MetricsHttpServer ----

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& address,
                                                                            const Metrics* metrics) {
  const auto colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-listen: '", address, "' is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port_str = absl::StrCat(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port_str.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics-listen: cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  int fd = -1;
  std::string err;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 16) != 0) {
      err = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("--metrics-listen: cannot listen on ", address, ": ", err));
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const int bound = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                   : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    close(fd);
    return absl::InternalError("metrics: pipe failed");
  }
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(fd, bound, pipe_fds, metrics));
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int port, int stop_fd[2], const Metrics* metrics)
    : listen_fd_(listen_fd), port_(port), stop_r_(stop_fd[0]), stop_w_(stop_fd[1]), metrics_(metrics) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsHttpServer::~MetricsHttpServer() {
  const char c = 'x';
  (void)!write(stop_w_, &c, 1);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_r_);
  close(stop_w_);
}

void MetricsHttpServer::Loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_r_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics endpoint: poll failed: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        Handle(fd);
        close(fd);
      }
    }
  }
}

void MetricsHttpServer::Handle(int fd) {
  constexpr size_t kMaxRequest = 8192;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < kMaxRequest) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
  const std::string_view line = std::string_view(req).substr(0, req.find("\r\n"));
  const bool head = line.starts_with("HEAD ");
  if (req.find("\r\n\r\n") == std::string::npos) {
    status = req.size() >= kMaxRequest ? "431 Request Header Fields Too Large" : "400 Bad Request";
    body = status + "\n";
  } else if (!line.starts_with("GET ") && !head) {
    status = "405 Method Not Allowed";
    body = "only GET\n";
  } else {
    std::string_view target = line.substr(line.find(' ') + 1);
    target = target.substr(0, target.find(' '));
    target = target.substr(0, target.find('?'));
    if (target == "/metrics") {
      body = metrics_->Serialize();
    } else if (target == "/") {
      type = "text/plain; charset=utf-8";
      body = "moke-server metrics: GET /metrics\n";
    } else {
      status = "404 Not Found";
      body = "not found\n";
    }
  }
  std::string resp = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type, "\r\nContent-Length: ", body.size(),
                                  "\r\nConnection: close\r\n\r\n");
  if (!head) resp += body;
  size_t done = 0;
  while (done < resp.size()) {
    ssize_t n = send(fd, resp.data() + done, resp.size() - done, MSG_NOSIGNAL);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

}  // namespace moke::server
