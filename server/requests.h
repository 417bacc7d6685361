// The engine's requests and results as plain structs, free of gRPC: service_impl.cc converts the protos
// into these, and tests/server/engine_test.cc builds them directly.
//
// Every request carries a moke::Budget: the caller's deadline (steady clock) and, for gRPC calls, a flag
// that the call's cancellation sets. The budget flows down into training and decoding.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/common/budget.h"
#include "core/editor/editor.h"
#include "core/storage/edit_log.h"

namespace moke::server {

using Clock = Budget::Clock;

struct EditSubmission {
  std::string question;
  std::string answer;
  std::string request_id;  // optional: a retry with the same id and content applies nothing
  std::vector<std::string> unrelated;
  // Scope keys (core/editor/scope.h): what the question is about, rewordings with the same answer.
  std::string subject;
  std::vector<std::string> paraphrases;
  Budget budget;
};

struct EditAck {
  uint64_t version = 0;
  uint64_t edit_id = 0;
  std::string subject;              // the subject the edit is keyed on (given or found)
  uint64_t superseded_edit_id = 0;  // the held edit of the same fact it replaced (fresh acks only)
  int expert = -1;
  bool new_concept = false;
  bool duplicate = false;  // the request id was applied before: nothing applied now
  int iterations = 0;
  double loss = 0;
  double apply_seconds = 0;
};

struct RetractSubmission {
  std::string question;
  uint64_t edit_id = 0;
  std::string request_id;
  Budget budget;
};

struct RetractAck {
  uint64_t version = 0;
  uint64_t retracted_edit_id = 0;
};

struct AskQuery {
  std::string question;
  int max_new_tokens = 0;  // 0: the editor's default
  uint64_t min_version = 0;
  std::optional<Routing> routing;
  Budget budget;
};

struct ScoreQuery {
  std::string prompt;
  std::string answer;
  uint64_t min_version = 0;
  std::optional<Routing> routing;
  bool original = false;
  Budget budget;
};

// One edit of the log as the request index knows it.
struct EditEntry {
  storage::LogRecord record;
  // 0 while the edit is part of the current knowledge; otherwise the version of the restore that rolled
  // it back (a later restore of a snapshot that holds it makes it 0 again).
  uint64_t rolled_back_version = 0;
};

struct EditList {
  std::vector<EditEntry> edits;
  uint64_t total = 0;
};

// A follower's view of its editor (server/follower.h keeps it current).
struct FollowState {
  std::string editor;           // the --follow address
  bool connected = false;       // the stream is up
  uint64_t editor_version = 0;  // the editor's version as last heard
  std::string last_error;       // why the stream last ended or a state was refused
};

struct EngineStatus {
  bool serving = false;
  EditorStats stats;
  std::string method, model, device;
  int queue_depth = 0;
  std::string role;         // "editor" or "follower"
  std::string instance_id;  // random per engine
  FollowState follow;       // followers only
};

}  // namespace moke::server
