// The editor's side of Follow (moke.v1.KnowledgeEditor/Follow, docs/scaling.md): per follower, the newest
// announced state (published and durable) as a full delta, then every newer one as the delta from the last one
// sent (core/editor/state_delta.h), in version order (versions published while a delta was being sent
// are coalesced into the next one), in chunks of kChunkBytes, and a heartbeat with the editor's version
// when nothing else was sent for a second.
//
// Each stream has a thread of its own: it waits for a new version (KnowledgeServer::AwaitVersionChange),
// computes the delta (copies of published tensors; never the model's compute) and writes one message at a
// time, waiting for each write to complete, so a slow follower holds at most one chunk here. A stream
// ends when the call is cancelled (the follower left, or the gRPC server shuts down and cancels it), when
// the engine stops (UNAVAILABLE: the editor is shutting down), or on an error computing a delta.
//
// Thread-safety: Start and Join are safe from any thread (gRPC's and the owner's). The service owns one;
// Join() must run before the engine is destroyed (Server::Shutdown does, after the gRPC server stopped).
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/knowledge_server.h"

namespace moke::server {

class FollowStreams {
 public:
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  static constexpr size_t kMaxStreams = 64;  // more followers of one editor: RESOURCE_EXHAUSTED

  explicit FollowStreams(KnowledgeServer* engine);
  ~FollowStreams();  // Join()

  // The reactor of one Follow call (finished at once with `refusal` when that is not OK). Never blocks.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Start(const std::string& follower_id, const absl::Status& refusal);
  // Waits for every stream's thread to end. Each ends within about a second of its call's cancellation,
  // and at once when the engine stops.
  void Join();

 private:
  struct Session;
  void Run(Session* session);

  KnowledgeServer* const engine_;
  absl::Mutex mu_;
  std::list<std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moke::server
