// moke-cli: a command-line client of moke.v1.KnowledgeEditor.
//
//   moke-cli [--server HOST:PORT] [--token T] [--json] [--timeout S] [--tls-ca FILE] <command> ...
//   edit QUESTION ANSWER [--request-id ID]    ask QUESTION [--min-version V] [--max-new-tokens N] [--routing R]
//   score PROMPT ANSWER [--original]          status     edits [--start N] [--limit N]     get-edit REQUEST_ID
//   snapshot                                  restore NAME     snapshots
//
// The bearer token comes from --token or MOKE_TOKEN; the server address from --server or MOKE_SERVER.
// Exit status: 0 on success, 1 when the RPC fails (its code and message on stderr), 2 on bad usage.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "moke/v1/moke.grpc.pb.h"

namespace v1 = moke::v1;

namespace {

struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string tls_ca;
  bool tls = false;
  bool json = false;
  double timeout = 600;
};

const char* CodeName(grpc::StatusCode c) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                 "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string RouteText(const v1::RouteInfo& r) {
  std::ostringstream s;
  if (r.expert() < 0) {
    s << "original weights";
  } else {
    s << "expert " << r.expert();
  }
  if (r.deltas_size() > 0) {
    s << " (deltas";
    for (double d : r.deltas()) s << " " << d;
    s << "; threshold " << r.threshold() << ")";
  }
  if (!r.subject().empty()) {
    s << " (subject \"" << r.subject() << "\" at " << r.subject_score() << ", relation " << r.relation_score();
    if (r.fact_version() > 0) s << "; the fact of version " << r.fact_version();
    s << ")";
  }
  return s.str();
}

class Cli {
 public:
  explicit Cli(const Globals& g) : g_(g) {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (g.tls || !g.tls_ca.empty()) {
      grpc::SslCredentialsOptions ssl;
      if (!g.tls_ca.empty()) {
        std::ifstream in(g.tls_ca);
        std::stringstream ss;
        ss << in.rdbuf();
        ssl.pem_root_certs = ss.str();
      }
      creds = grpc::SslCredentials(ssl);
    }
    stub_ = v1::KnowledgeEditor::NewStub(grpc::CreateChannel(g.server, creds));
  }

  void Prepare(grpc::ClientContext* ctx, bool auth) const {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(g_.timeout * 1000)));
    if (auth && !g_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + g_.token);
  }

  // Prints the result; returns the exit status.
  template <typename Resp>
  int Done(const grpc::Status& s, const Resp& resp, const std::function<void()>& human) const {
    if (!s.ok()) {
      std::cerr << "error: " << CodeName(s.error_code()) << ": " << s.error_message() << "\n";
      return 1;
    }
    if (g_.json) {
      std::cout << ToJson(resp) << "\n";
    } else {
      human();
    }
    return 0;
  }

  v1::KnowledgeEditor::Stub& stub() { return *stub_; }

 private:
  Globals g_;
  std::unique_ptr<v1::KnowledgeEditor::Stub> stub_;
};

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"moke-cli: talk to a moke-server"};
  app.require_subcommand(1);
  app.add_option("--server", g.server, "host:port")->envname("MOKE_SERVER")->capture_default_str();
  app.add_option("--token", g.token, "bearer token for edit, snapshot, restore, edits, get-edit")->envname("MOKE_TOKEN");
  app.add_flag("--tls", g.tls, "use TLS with the system roots");
  app.add_option("--tls-ca", g.tls_ca, "use TLS with this CA certificate (PEM)");
  app.add_flag("--json", g.json, "print the response as JSON");
  app.add_option("--timeout", g.timeout, "deadline in seconds")->capture_default_str();

  v1::EditFactRequest edit;
  auto* c_edit = app.add_subcommand("edit", "teach a fact: QUESTION -> ANSWER");
  c_edit->add_option("question", *edit.mutable_question())->required();
  c_edit->add_option("answer", *edit.mutable_answer())->required();
  c_edit->add_option("--request-id", *edit.mutable_request_id(), "retry-safe id (a retry applies nothing)");

  v1::AskRequest ask;
  uint64_t ask_min = 0;
  int ask_tokens = 0;
  std::string routing = "default";
  auto* c_ask = app.add_subcommand("ask", "greedy answer to QUESTION");
  c_ask->add_option("question", *ask.mutable_question())->required();
  c_ask->add_option("--min-version", ask_min, "wait until this knowledge version is published");
  c_ask->add_option("--max-new-tokens", ask_tokens, "0: server default");
  c_ask->add_option("--routing", routing, "default, router, activation, activation_router")
      ->check(CLI::IsMember({"default", "router", "activation", "activation_router"}));

  v1::ScoreRequest score;
  uint64_t score_min = 0;
  bool original = false;
  auto* c_score = app.add_subcommand("score", "teacher-forced accuracy and log-probability of ANSWER after PROMPT");
  c_score->add_option("prompt", *score.mutable_prompt())->required();
  c_score->add_option("answer", *score.mutable_answer())->required();
  c_score->add_option("--min-version", score_min);
  c_score->add_flag("--original", original, "score with the unedited model");

  auto* c_status = app.add_subcommand("status", "server status");
  v1::ListEditsRequest list;
  uint64_t start = 0;
  int limit = 0;
  auto* c_edits = app.add_subcommand("edits", "list applied edits");
  c_edits->add_option("--start", start, "first edit id (1-based)");
  c_edits->add_option("--limit", limit, "at most this many (0: 100)");
  v1::GetEditRequest get_edit;
  auto* c_get_edit = app.add_subcommand("get-edit", "was the edit sent with REQUEST_ID applied, at which version?");
  c_get_edit->add_option("request_id", *get_edit.mutable_request_id())->required();
  auto* c_snapshot = app.add_subcommand("snapshot", "write a snapshot now");
  std::string restore_name;
  auto* c_restore = app.add_subcommand("restore", "switch to snapshot NAME (e.g. snap-12.bin)");
  c_restore->add_option("name", restore_name)->required();
  auto* c_snapshots = app.add_subcommand("snapshots", "list snapshots");

  CLI11_PARSE(app, argc, argv);
  Cli cli(g);
  grpc::ClientContext ctx;

  if (*c_edit) {
    cli.Prepare(&ctx, true);
    v1::EditFactResponse r;
    grpc::Status s = cli.stub().EditFact(&ctx, edit, &r);
    return cli.Done(s, r, [&] {
      if (r.duplicate()) std::cout << "duplicate request id: nothing applied; first result:\n";
      std::cout << "edit " << r.edit_id() << " -> version " << r.version() << ", expert " << r.expert()
                << (r.new_concept() ? " (new concept)" : "") << ", " << r.iterations() << " iterations, loss "
                << r.loss() << ", " << r.apply_seconds() << " s\n";
    });
  }
  if (*c_ask) {
    cli.Prepare(&ctx, false);
    ask.set_min_version(ask_min);
    ask.set_max_new_tokens(ask_tokens);
    v1::RoutingMode mode = v1::ROUTING_DEFAULT;
    if (routing == "router") mode = v1::ROUTING_ROUTER;
    if (routing == "activation") mode = v1::ROUTING_ACTIVATION;
    if (routing == "activation_router") mode = v1::ROUTING_ACTIVATION_ROUTER;
    ask.set_routing(mode);
    v1::AskResponse r;
    grpc::Status s = cli.stub().Ask(&ctx, ask, &r);
    return cli.Done(s, r, [&] {
      std::cout << r.answer() << "\n  version " << r.version() << ", " << RouteText(r.route()) << "\n";
    });
  }
  if (*c_score) {
    cli.Prepare(&ctx, false);
    score.set_min_version(score_min);
    score.set_original_model(original);
    v1::ScoreResponse r;
    grpc::Status s = cli.stub().Score(&ctx, score, &r);
    return cli.Done(s, r, [&] {
      std::cout << "token accuracy " << r.token_accuracy() << ", log-prob " << r.log_prob() << " (version "
                << r.version() << ", " << RouteText(r.route()) << ")\n";
    });
  }
  if (*c_status) {
    cli.Prepare(&ctx, false);
    v1::GetStatusResponse r;
    grpc::Status s = cli.stub().GetStatus(&ctx, v1::GetStatusRequest(), &r);
    return cli.Done(s, r, [&] {
      std::cout << (r.serving() ? "serving" : "NOT serving") << "\n  version " << r.version() << " (" << r.edits_applied()
                << " edits applied)\n  method " << r.method() << ", " << r.num_experts() << " experts at layer "
                << r.edit_layer() << "\n  model " << r.model() << " on " << r.device() << "\n  queue depth "
                << r.queue_depth() << ", replay buffer " << r.replay_buffer_size() << "\n";
      for (const auto& [part, bytes] : r.memory_bytes()) std::cout << "  memory " << part << ": " << bytes << " bytes\n";
      if (r.role() == "follower") {
        const v1::FollowerStatus& f = r.follower();
        std::cout << "  follower of " << f.editor() << ": " << (f.connected() ? "connected" : "DISCONNECTED")
                  << ", editor at version " << f.editor_version() << ", lag " << f.lag_versions() << " versions"
                  << (f.last_error().empty() ? "" : "; last error: " + f.last_error()) << "\n";
      }
    });
  }
  if (*c_edits) {
    cli.Prepare(&ctx, true);
    list.set_start(start);
    list.set_limit(limit);
    v1::ListEditsResponse r;
    grpc::Status s = cli.stub().ListEdits(&ctx, list, &r);
    return cli.Done(s, r, [&] {
      for (const auto& e : r.edits()) {
        std::cout << e.edit_id() << "\tv" << e.version() << "\texpert " << e.expert() << "\t" << e.question()
                  << " -> " << e.answer() << (e.request_id().empty() ? "" : "\t[" + e.request_id() + "]")
                  << (e.rolled_back_version() ? "\trolled back at v" + std::to_string(e.rolled_back_version()) : "")
                  << "\n";
      }
      std::cout << r.edits_size() << " of " << r.total() << " edits\n";
    });
  }
  if (*c_get_edit) {
    cli.Prepare(&ctx, true);
    v1::GetEditResponse r;
    grpc::Status s = cli.stub().GetEdit(&ctx, get_edit, &r);
    return cli.Done(s, r, [&] {
      const auto& e = r.edit();
      std::cout << "applied: edit " << e.edit_id() << " at version " << e.version() << ", " << e.question() << " -> "
                << e.answer()
                << (e.rolled_back_version() ? " (rolled back at version " + std::to_string(e.rolled_back_version()) + ")"
                                            : "")
                << "\n";
    });
  }
  if (*c_snapshot) {
    cli.Prepare(&ctx, true);
    v1::CreateSnapshotResponse r;
    grpc::Status s = cli.stub().CreateSnapshot(&ctx, v1::CreateSnapshotRequest(), &r);
    return cli.Done(s, r, [&] {
      std::cout << "snapshot " << r.snapshot().name() << " (version " << r.snapshot().version() << ", "
                << r.snapshot().bytes() << " bytes)\n";
    });
  }
  if (*c_restore) {
    cli.Prepare(&ctx, true);
    v1::RestoreSnapshotRequest req;
    req.set_name(restore_name);
    v1::RestoreSnapshotResponse r;
    grpc::Status s = cli.stub().RestoreSnapshot(&ctx, req, &r);
    return cli.Done(s, r, [&] { std::cout << "restored " << restore_name << ": version " << r.version() << "\n"; });
  }
  if (*c_snapshots) {
    cli.Prepare(&ctx, false);
    v1::ListSnapshotsResponse r;
    grpc::Status s = cli.stub().ListSnapshots(&ctx, v1::ListSnapshotsRequest(), &r);
    return cli.Done(s, r, [&] {
      for (const auto& f : r.snapshots()) {
        std::cout << f.name() << "\tversion " << f.version() << "\t" << f.bytes() << " bytes\n";
      }
      std::cout << r.snapshots_size() << " snapshots\n";
    });
  }
  return 2;
}
