#include "server/server_options.h"

#include <filesystem>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "spdlog/spdlog.h"

#ifndef MOKE_DEFAULT_MODEL_DIR
#define MOKE_DEFAULT_MODEL_DIR "models/stories260k"
#endif

namespace moke::server {

void AddServerFlags(CLI::App& app, ServerOptions* o) {
  app.add_option("--listen", o->listen, "gRPC address host:port (port 0 picks a free port)")
      ->envname("MOKE_LISTEN")
      ->capture_default_str();
  app.add_option("--metrics-listen", o->metrics_listen, "Prometheus /metrics address host:port; empty: off")
      ->envname("MOKE_METRICS_LISTEN")
      ->capture_default_str();
  app.add_option("--model", o->model, absl::StrCat("Model folder (default: config model_dir, else ", MOKE_DEFAULT_MODEL_DIR, ")"))
      ->envname("MOKE_MODEL");
  app.add_option("--device", o->device, "cpu or cuda[:N] (default: config device, else cpu)")->envname("MOKE_DEVICE");
  app.add_option("--config", o->config, "JSON file of model and editor settings")->envname("MOKE_CONFIG");
  app.add_option("--data-dir", o->engine.data_dir, "Edit log and snapshots folder")
      ->envname("MOKE_DATA_DIR")
      ->capture_default_str();
  app.add_option("--snapshot-every", o->engine.snapshot_every, "Write a snapshot every N edits (0: only on request)")
      ->envname("MOKE_SNAPSHOT_EVERY")
      ->capture_default_str();
  app.add_option("--token", o->token,
                 "Bearer token required by EditFact/RetractFact/CreateSnapshot/RestoreSnapshot (and accepted by "
                 "ListEdits/GetEdit)")
      ->envname("MOKE_TOKEN");
  app.add_option("--read-token", o->read_token,
                 "Bearer token for reading the edit history (ListEdits/GetEdit); without it those need --token")
      ->envname("MOKE_READ_TOKEN");
  app.add_option("--tls-cert", o->tls_cert, "PEM certificate chain (TLS on when given with --tls-key)")
      ->envname("MOKE_TLS_CERT");
  app.add_option("--tls-key", o->tls_key, "PEM private key")->envname("MOKE_TLS_KEY");
  app.add_option("--max-queue", o->engine.max_queue, "Edits waiting for the editor thread (then RESOURCE_EXHAUSTED)")
      ->envname("MOKE_MAX_QUEUE")
      ->capture_default_str();
  app.add_option("--workers", o->engine.workers, "Threads answering Ask and Score")
      ->envname("MOKE_WORKERS")
      ->capture_default_str();
  app.add_option("--max-batch", o->engine.max_batch,
                 "Asks decoded together, one forward per step for all (1: each Ask alone on a worker)")
      ->envname("MOKE_MAX_BATCH")
      ->capture_default_str();
  app.add_option_function<int64_t>(
         "--batch-window-us", [o](int64_t us) { o->engine.batch_window = std::chrono::microseconds(us); },
         "An idle batched decoder waits this long (microseconds) for more Asks before its first step")
      ->envname("MOKE_BATCH_WINDOW_US")
      ->default_str(std::to_string(o->engine.batch_window.count()));
  app.add_option("--max-read-queue", o->engine.max_read_queue, "Asks/Scores waiting for a worker")
      ->envname("MOKE_MAX_READ_QUEUE")
      ->capture_default_str();
  app.add_option("--max-question-bytes", o->engine.max_question_bytes, "Longest question or prompt")
      ->envname("MOKE_MAX_QUESTION_BYTES")
      ->capture_default_str();
  app.add_option("--max-answer-bytes", o->engine.max_answer_bytes, "Longest answer")
      ->envname("MOKE_MAX_ANSWER_BYTES")
      ->capture_default_str();
  app.add_option("--max-message-bytes", o->max_message_bytes, "Largest gRPC request")
      ->envname("MOKE_MAX_MESSAGE_BYTES")
      ->capture_default_str();
  app.add_option("--log-level", o->log_level, "trace, debug, info, warn, error")
      ->envname("MOKE_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--follow", o->engine.follow,
                 "Serve Ask/Score as a read replica of the editor at host:port (no edits, no data dir)")
      ->envname("MOKE_FOLLOW");
  app.add_option("--follow-token", o->follow_token, "Bearer token for the editor's Follow (its read or edit token)")
      ->envname("MOKE_FOLLOW_TOKEN");
  app.add_option("--max-lag-versions", o->max_lag_versions,
                 "Follower: health NOT_SERVING while the editor is more than this many versions ahead")
      ->envname("MOKE_MAX_LAG_VERSIONS")
      ->capture_default_str();
  app.add_option("--port-file", o->port_file, "Write the chosen gRPC and metrics ports here once listening")
      ->envname("MOKE_PORT_FILE");
}

absl::Status FinalizeServerOptions(ServerOptions* o) {
  EditorOptions& e = o->engine.editor;
  if (!o->config.empty()) {
    if (!std::filesystem::exists(o->config)) return absl::InvalidArgumentError(absl::StrCat("--config: ", o->config, " not found"));
    absl::Status s = LoadEditorOptions(o->config, &e);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("--config ", s.message()));  // it names the file
  }
  if (!o->model.empty()) e.model_dir = o->model;
  if (e.model_dir.empty()) e.model_dir = MOKE_DEFAULT_MODEL_DIR;
  if (!o->device.empty()) e.device = o->device;
  if (!std::filesystem::is_directory(e.model_dir)) {
    return absl::InvalidArgumentError(absl::StrCat("--model: ", e.model_dir, " is not a folder"));
  }
  if (o->listen.empty() || o->listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: '", o->listen, "' is not host:port"));
  }
  if (o->tls_cert.empty() != o->tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key: give both or neither");
  }
  for (const std::string* f : {&o->tls_cert, &o->tls_key}) {
    if (!f->empty() && !std::filesystem::exists(*f)) return absl::InvalidArgumentError(absl::StrCat("TLS file ", *f, " not found"));
  }
  if (!o->engine.follow.empty() && o->engine.follow.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--follow: '", o->engine.follow, "' is not host:port"));
  }
  if (o->engine.follow.empty() && !o->follow_token.empty()) {
    return absl::InvalidArgumentError("--follow-token: only with --follow");
  }
  if (o->max_message_bytes < 1024) return absl::InvalidArgumentError("--max-message-bytes: must be >= 1024");
  if (spdlog::level::from_str(o->log_level) == spdlog::level::off && o->log_level != "off") {
    return absl::InvalidArgumentError(absl::StrCat("--log-level: unknown level '", o->log_level, "'"));
  }
  // The engine checks the rest (queue sizes, workers, snapshot interval) and names the flag.
  return absl::OkStatus();
}

}  // namespace moke::server
