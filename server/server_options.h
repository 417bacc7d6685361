// Process settings of moke-server: command-line flags, each with a MOKE_* environment-variable twin,
// plus the editor's JSON config file (--config). Flags given explicitly win over the config file.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "server/knowledge_server.h"

namespace CLI {
class App;
}

namespace moke::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";   // port 0: pick one (logged and written to --port-file)
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no metrics endpoint
  std::string model;    // empty: the config file's model_dir, else MOKE_DEFAULT_MODEL_DIR
  std::string device;   // empty: the config file's device (cpu by default)
  std::string config;   // JSON file of EditorOptions; empty: defaults
  std::string token;    // bearer token for the RPCs that change knowledge (and the history); empty: none
  std::string read_token;  // bearer token for the edit history (ListEdits, GetEdit); empty: `token` only
  std::string tls_cert, tls_key;  // both or neither
  std::string log_level = "info";
  std::string port_file;  // written once listening: "<grpc port>\n<metrics port>\n"
  int max_message_bytes = 1 << 20;
  int shutdown_grace_seconds = 10;
  // Followers (engine.follow: the editor's address).
  std::string follow_token;        // bearer token for the editor's Follow (its read or edit token)
  uint64_t max_lag_versions = 10;  // health NOT_SERVING while the editor is further ahead
  EngineOptions engine;
};

// Registers every flag on `app`, writing into `options`.
void AddServerFlags(CLI::App& app, ServerOptions* options);
// After parsing: loads --config into options->engine.editor, applies --model/--device, and checks every
// setting. The error message names the flag or the config key.
absl::Status FinalizeServerOptions(ServerOptions* options);

}  // namespace moke::server
