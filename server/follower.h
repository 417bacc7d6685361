// A read replica's link to its editor (moke-server --follow EDITOR_ADDR, docs/scaling.md): one thread
// that reads the editor's Follow stream, reassembles each state delta from its chunks, applies it to the
// state served here (core/editor/state_delta.h: bytes, never a retraining) and publishes the result
// (KnowledgeServer::PublishFollowed): reads that start afterwards see it, reads in progress keep theirs,
// reads waiting for a min_version run once it is reached.
//
// When the stream ends (the editor restarts or goes away) the last state keeps being served; GetStatus
// and moke_follower_connected say the follower is disconnected, and it reconnects with exponential backoff
// (kMinBackoff doubling to kMaxBackoff), starting again from the editor's full state. Ready (the health
// service's SERVING) once a state has arrived and while the editor's version, as last heard, is at most
// max_lag_versions ahead.
//
// Thread-safety: Start and Stop from the owner's thread (Server); `on_ready` runs on the follower's
// thread. The engine and metrics must outlive the Follower.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/knowledge_server.h"
#include "server/metrics.h"

#include "moke/v1/moke.grpc.pb.h"

namespace moke::server {

struct FollowerOptions {
  std::string editor;         // host:port of the editor
  std::string token;          // bearer token for Follow (the editor's read or edit token); empty: none
  uint64_t max_lag_versions = 10;
  // How long Start() waits for the editor to answer, and then for its first state.
  std::chrono::milliseconds connect_timeout{30000};
};

class Follower {
 public:
  static constexpr std::chrono::milliseconds kMinBackoff{100};
  static constexpr std::chrono::milliseconds kMaxBackoff{5000};

  // Checks the address (an editor, reachable within connect_timeout, not this very server and not another
  // follower: FAILED_PRECONDITION / UNAVAILABLE with a message that says so), then starts following and
  // waits (up to connect_timeout) for the first state. An editor that refuses the state (another model,
  // a wrong token) is an error here too. `engine` must be a started follower engine.
  static absl::StatusOr<std::unique_ptr<Follower>> Start(FollowerOptions options, KnowledgeServer* engine,
                                                         Metrics* metrics, std::function<void(bool ready)> on_ready);
  ~Follower();  // Stop()
  // Ends the stream and joins the thread; the engine keeps serving the last state. Idempotent.
  void Stop();

 private:
  Follower(FollowerOptions options, KnowledgeServer* engine, Metrics* metrics, std::function<void(bool)> on_ready);
  absl::Status CheckEditor();
  void Loop();
  // Cancels a stream that has been silent for kSilence (the editor's host is gone without a word).
  void Watch();
  // One connection: reads the stream until it ends; the reason it ended. *heard: a message came.
  absl::Status StreamOnce(bool* heard);
  // Records what was heard from the editor and recomputes the lag, readiness and status.
  void Heard(bool connected, uint64_t editor_version, const absl::Status& error);

  const FollowerOptions options_;
  KnowledgeServer* const engine_;
  Metrics* const metrics_;
  const std::function<void(bool)> on_ready_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // the stream being read, to cancel it
  absl::Time last_heard_ ABSL_GUARDED_BY(mu_);
  bool synced_ ABSL_GUARDED_BY(mu_) = false;        // a state from the editor is published
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);   // why the first connection failed (for Start)
  uint64_t editor_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_error_ ABSL_GUARDED_BY(mu_);     // why the stream last ended (kept once reconnected)
  std::unique_ptr<moke::v1::KnowledgeEditor::Stub> stub_;  // the loop thread's
  std::thread thread_;    // Loop
  std::thread watchdog_;  // Watch; started by Loop
};

}  // namespace moke::server
