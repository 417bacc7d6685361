#include "server/follower.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/editor/state_delta.h"
#include "grpcpp/grpcpp.h"
#include "moke/v1/moke.grpc.pb.h"
#include "server/status_util.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

namespace v1 = ::moke::v1;

// A state larger than this is refused (the editor's whole state at LLaMA-2-7B with 128 experts is a few
// GB).
constexpr size_t kMaxStateBytes = size_t{32} << 30;
// The editor sends a heartbeat every second, but not while it computes a delta (a full state at the 7B
// shape copies GBs): this long without a message, the stream is taken for dead.
constexpr absl::Duration kSilence = absl::Seconds(30);
// Each GetStatus try of the start-up check.
constexpr std::chrono::seconds kProbeTimeout{2};

// Errors that another try will not mend: the follower stops trying at start.
bool Fatal(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address) {
  grpc::ChannelArguments args;
  // Reconnect within our own backoff after an editor restart (gRPC's default grows to two minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, static_cast<int>(Follower::kMinBackoff.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(Follower::kMinBackoff.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(Follower::kMaxBackoff.count()));
  args.SetMaxReceiveMessageSize(8 << 20);  // chunks are 1 MiB
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Follower>> Follower::Start(FollowerOptions options, KnowledgeServer* engine,
                                                          Metrics* metrics, std::function<void(bool)> on_ready) {
  std::unique_ptr<Follower> f(new Follower(std::move(options), engine, metrics, std::move(on_ready)));
  if (absl::Status s = f->CheckEditor(); !s.ok()) return s;
  f->thread_ = std::thread([p = f.get()] { p->Loop(); });
  absl::Status first;
  bool synced = false;
  {
    absl::MutexLock lock(&f->mu_);
    auto settled = [p = f.get()]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return p->synced_ || !p->first_error_.ok(); };
    f->mu_.AwaitWithTimeout(absl::Condition(&settled), absl::FromChrono(f->options_.connect_timeout));
    first = f->first_error_;
    synced = f->synced_;
  }
  if (!synced && !first.ok()) {
    f->Stop();
    return absl::Status(first.code(), absl::StrCat("--follow ", f->options_.editor, ": ", first.message()));
  }
  if (!synced) {
    spdlog::warn("following {}: no state from the editor after {} ms; still trying (not ready until one arrives)",
                 f->options_.editor, f->options_.connect_timeout.count());
  }
  return f;
}

Follower::Follower(FollowerOptions options, KnowledgeServer* engine, Metrics* metrics,
                   std::function<void(bool)> on_ready)
    : options_(std::move(options)), engine_(engine), metrics_(metrics), on_ready_(std::move(on_ready)) {}

Follower::~Follower() { Stop(); }

void Follower::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

absl::Status Follower::CheckEditor() {
  auto stub = v1::KnowledgeEditor::NewStub(ChannelTo(options_.editor));
  const auto deadline = std::chrono::system_clock::now() + options_.connect_timeout;
  std::chrono::milliseconds backoff = kMinBackoff;
  while (true) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::min(deadline, std::chrono::system_clock::now() + kProbeTimeout));
    v1::GetStatusResponse status;
    const grpc::Status s = stub->GetStatus(&ctx, v1::GetStatusRequest(), &status);
    if (s.ok()) {
      if (status.instance_id() == engine_->instance_id()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--follow ", options_.editor, ": that is this server itself; point --follow at the editor"));
      }
      if (status.role() == "follower") {
        return absl::FailedPreconditionError(absl::StrCat("--follow ", options_.editor,
                                                          ": that server is itself a follower (of ",
                                                          status.follower().editor(),
                                                          "); point --follow at the editor"));
      }
      spdlog::info("following the editor at {} (version {})", options_.editor, status.version());
      return absl::OkStatus();
    }
    if (std::chrono::system_clock::now() + backoff >= deadline) {
      return absl::UnavailableError(absl::StrCat("--follow ", options_.editor, ": the editor did not answer within ",
                                                 options_.connect_timeout.count(), " ms (", s.error_message(), ")"));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void Follower::Loop() {
  watchdog_ = std::thread([this] { Watch(); });
  std::chrono::milliseconds backoff = kMinBackoff;
  while (true) {
    bool heard = false;
    const absl::Status s = StreamOnce(&heard);
    uint64_t editor_version = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      if (!synced_ && Fatal(s)) first_error_ = s;
      editor_version = editor_version_;
    }
    Heard(false, editor_version, s);
    if (heard) backoff = kMinBackoff;
    spdlog::warn("following {}: stream ended ({}); serving version {}; reconnecting in {} ms", options_.editor,
                 s.ToString(), engine_->CurrentView()->version(), backoff.count());
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::FromChrono(backoff))) break;
    }
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void Follower::Watch() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(500))) {
    if (call_ != nullptr && absl::Now() - last_heard_ > kSilence) {
      spdlog::warn("following {}: nothing heard for {}; dropping the stream", options_.editor,
                   absl::FormatDuration(kSilence));
      call_->TryCancel();
      last_heard_ = absl::Now();
    }
  }
}

absl::Status Follower::StreamOnce(bool* heard) {
  grpc::ClientContext ctx;
  if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return absl::CancelledError("stopping");
    if (!stub_) stub_ = v1::KnowledgeEditor::NewStub(ChannelTo(options_.editor));
    call_ = &ctx;
    last_heard_ = absl::Now();
  }
  v1::FollowRequest request;
  request.set_follower_id(engine_->instance_id());
  std::unique_ptr<grpc::ClientReader<v1::FollowUpdate>> reader = stub_->Follow(&ctx, request);
  std::string pending;  // the chunks of the state being received
  absl::Status failure;
  v1::FollowUpdate u;
  while (reader->Read(&u)) {
    *heard = true;
    {
      absl::MutexLock lock(&mu_);
      last_heard_ = absl::Now();
    }
    if (!u.state_chunk().empty() || u.state_end()) {
      if (u.state_chunk().size() > kMaxStateBytes - pending.size()) {
        failure = absl::ResourceExhaustedError(absl::StrCat("the editor's state exceeds ", kMaxStateBytes, " bytes"));
        break;
      }
      pending += u.state_chunk();
      if (u.state_end()) {
        absl::StatusOr<std::shared_ptr<const KnowledgeView>> next = ApplyStateDelta(*engine_->CurrentView(), pending);
        pending.clear();
        failure = next.ok() ? engine_->PublishFollowed(*next) : next.status();
        if (!failure.ok()) break;
        absl::MutexLock lock(&mu_);
        if (!synced_) spdlog::info("following {}: at version {}", options_.editor, (*next)->version());
        synced_ = true;
      }
    }
    Heard(true, u.editor_version(), absl::OkStatus());
  }
  if (!failure.ok()) {
    spdlog::error("following {}: {}", options_.editor, failure.ToString());
    ctx.TryCancel();
    while (reader->Read(&u)) {
    }
  }
  const grpc::Status end = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    call_ = nullptr;
  }
  if (!failure.ok()) return failure;
  if (end.ok()) return absl::UnavailableError("the editor ended the stream");
  return FromGrpcStatus(end);
}

void Follower::Heard(bool connected, uint64_t editor_version, const absl::Status& error) {
  bool ready = false, changed = false;
  uint64_t lag = 0;
  const uint64_t applied = engine_->CurrentView()->version();
  FollowState state;
  {
    absl::MutexLock lock(&mu_);
    editor_version_ = editor_version;
    lag = editor_version_ > applied ? editor_version_ - applied : 0;
    ready = synced_ && lag <= options_.max_lag_versions;
    changed = ready != ready_;
    ready_ = ready;
    if (!error.ok()) last_error_ = error.ToString();
    state.last_error = last_error_;
  }
  state.connected = connected;
  state.editor_version = editor_version;
  engine_->SetFollowState(std::move(state));
  if (metrics_) {
    metrics_->SetFollowerLag(lag);
    metrics_->SetFollowerConnected(connected);
  }
  if (changed && on_ready_) on_ready_(ready);
}

}  // namespace moke::server
