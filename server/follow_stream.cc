#include "server/follow_stream.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/editor/state_delta.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "moke/v1/moke.pb.h"
#include "server/status_util.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

constexpr absl::Duration kHeartbeat = absl::Seconds(1);

// One Follow call's reactor, driven by its session's thread: Write() blocks until gRPC has taken the
// message (or the call broke), End() finishes. Deletes itself when the call is done (after End).
//
// Thread-safety: Write and End from the session thread only; OnWriteDone and OnCancel from gRPC's;
// the flags are guarded by mu_.
class FollowReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // False when the call is cancelled or broken (nothing more will be delivered).
  bool Write(const moke::v1::FollowUpdate& update) {
    bool own = false;
    buffer_.Clear();  // the previous message's write is done (OnWriteDone came)
    if (!grpc::SerializationTraits<moke::v1::FollowUpdate>::Serialize(update, &buffer_, &own).ok()) return false;
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || cancelled_) return false;
      writing_ = true;
    }
    StartWrite(&buffer_);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](bool* writing) { return !*writing; }, &writing_));
    return !broken_ && !cancelled_;
  }
  bool cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_ || broken_;
  }
  void End(const grpc::Status& status) { Finish(status); }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    if (!ok) broken_ = true;
    writing_ = false;
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer buffer_;  // the message being written (gRPC reads it until OnWriteDone)
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

struct FollowStreams::Session {
  std::string follower_id;
  FollowReactor* reactor = nullptr;  // owned by gRPC; valid until the thread calls End
  std::thread thread;
  std::atomic<bool> done{false};
};

FollowStreams::FollowStreams(KnowledgeServer* engine) : engine_(engine) {}
FollowStreams::~FollowStreams() { Join(); }

grpc::ServerWriteReactor<grpc::ByteBuffer>* FollowStreams::Start(const std::string& follower_id,
                                                                  const absl::Status& refusal) {
  auto* reactor = new FollowReactor();
  if (!refusal.ok()) {
    reactor->End(ToGrpcStatus(refusal));
    return reactor;
  }
  absl::MutexLock lock(&mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {  // reap the streams that ended
    if ((*it)->done.load()) {
      (*it)->thread.join();
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  if (sessions_.size() >= kMaxStreams) {
    reactor->End(ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("this editor already streams to ", kMaxStreams, " followers"))));
    return reactor;
  }
  auto session = std::make_unique<Session>();
  session->follower_id = follower_id;
  session->reactor = reactor;
  Session* s = session.get();
  sessions_.push_back(std::move(session));
  s->thread = std::thread([this, s] { Run(s); });
  return reactor;
}

void FollowStreams::Join() {
  std::list<std::unique_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mu_);
    sessions.swap(sessions_);
  }
  for (auto& s : sessions) s->thread.join();
}

void FollowStreams::Run(Session* s) {
  FollowReactor* reactor = s->reactor;
  const std::string who = s->follower_id.empty() ? "a follower" : absl::StrCat("follower ", s->follower_id);
  spdlog::info("Follow: streaming to {}", who);
  std::shared_ptr<const KnowledgeView> sent;  // the state the follower holds once our writes arrive
  auto last_write = std::chrono::steady_clock::now();
  absl::Status end;
  while (true) {
    if (engine_->stopping()) {
      end = absl::UnavailableError("the editor is shutting down");
      break;
    }
    if (reactor->cancelled()) break;
    // Only announced versions: an editor announces a version once it is durable (a restore is
    // published a moment before its log record is), so a follower never holds one a crash could undo.
    const uint64_t announced = engine_->AnnouncedVersion();
    std::shared_ptr<const KnowledgeView> view = engine_->CurrentView();
    moke::v1::FollowUpdate update;
    if (view && view->version() <= announced && (!sent || view->version() != sent->version())) {
      absl::StatusOr<std::string> delta = DiffStates(sent.get(), *view);
      if (!delta.ok()) {
        end = delta.status();
        break;
      }
      bool written = true;
      for (size_t at = 0; written && (at < delta->size() || at == 0); at += kChunkBytes) {
        update.set_editor_version(view->version());
        update.set_version(view->version());
        update.set_state_chunk(delta->substr(at, kChunkBytes));
        update.set_state_end(at + kChunkBytes >= delta->size());
        written = reactor->Write(update);
      }
      if (!written) break;
      spdlog::debug("Follow: version {} ({} bytes{}) sent to {}", view->version(), delta->size(),
                    sent ? "" : ", full", who);
      sent = std::move(view);
      last_write = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_write >= absl::ToChronoNanoseconds(kHeartbeat)) {
      update.set_editor_version(announced);
      if (!reactor->Write(update)) break;
      last_write = std::chrono::steady_clock::now();
    }
    const auto since = std::chrono::steady_clock::now() - last_write;
    const absl::Duration left = kHeartbeat - absl::FromChrono(since);
    engine_->AwaitVersionChange(announced, std::max(left, absl::Milliseconds(10)));
  }
  spdlog::info("Follow: stream to {} ended{}", who, end.ok() ? "" : absl::StrCat(": ", end.message()));
  reactor->End(ToGrpcStatus(end));  // the reactor deletes itself once the call is done
  s->done.store(true);
}

}  // namespace moke::server
