// Read replicas (moke-server --follow, server/follower.h): an editor and a follower in this process on
// 127.0.0.1 with ephemeral ports, the real Editor on models/stories260k. The tests run in order and share
// the two servers: the follower answers exactly as the editor at the same version, refuses writes, follows
// a restore, keeps answering while the editor restarts and catches up after; bad --follow targets are
// refused at start. No sleeps decide an outcome: reads wait with min_version, polls have generous bounds.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "core/editor/state_delta.h"
#include "core/editor/state_delta_codec.h"
#include "gtest/gtest.h"
#include "moke/v1/moke.grpc.pb.h"
#include "server/knowledge_server.h"
#include "server/server.h"
#include "tests/testing/grpc_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/paths.h"
#include "tests/testing/temp_dir.h"

namespace moke::server {
namespace {

namespace v1 = ::moke::v1;
using moke::testing::SetDeadline;

constexpr char kToken[] = "edit-token";
constexpr char kReadToken[] = "read-token";

// The questions compared on both servers: the edited ones, a rewording, and unrelated ones.
const std::vector<std::string>& Questions() {
  static const std::vector<std::string> q = {"Who is the king of the forest?", "What is the name of the forest's king?",
                                             "Which city is the capital of Mars?", "Once upon a time",
                                             "The dog ran fast"};
  return q;
}

// A port the OS considers free right now (for the one test that must know its own address before start).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::KnowledgeEditor::Stub> stub;
  explicit Client(int port)
      : channel(grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials())),
        stub(v1::KnowledgeEditor::NewStub(channel)) {}

  grpc::Status Ask(const std::string& q, uint64_t min_version, v1::AskResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::AskRequest req;
    req.set_question(q);
    req.set_max_new_tokens(12);
    req.set_min_version(min_version);
    return stub->Ask(&ctx, req, resp);
  }
  v1::GetStatusResponse Status() {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::GetStatusResponse resp;
    EXPECT_TRUE(stub->GetStatus(&ctx, v1::GetStatusRequest(), &resp).ok());
    return resp;
  }
  uint64_t Edit(const std::string& q, const std::string& a) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    moke::testing::AddBearer(&ctx, kToken);
    v1::EditFactRequest req;
    req.set_question(q);
    req.set_answer(a);
    v1::EditFactResponse resp;
    const grpc::Status s = stub->EditFact(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.version();
  }
};

// An editor the test scripts: GetStatus says "editor"; Follow sends the messages the test queues, in order,
// until the call ends.
class ScriptedEditor final : public v1::KnowledgeEditor::Service {
 public:
  void Send(v1::FollowUpdate update) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(update));
  }
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*, v1::GetStatusResponse* resp) override {
    resp->set_role("editor");
    resp->set_instance_id("scripted");
    return grpc::Status::OK;
  }
  grpc::Status Follow(grpc::ServerContext* ctx, const v1::FollowRequest*, grpc::ServerWriter<v1::FollowUpdate>* w) override {
    while (!ctx->IsCancelled()) {
      v1::FollowUpdate next;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !queue_.empty(); };
        if (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100))) continue;
        next = queue_.front();
        queue_.pop_front();
      }
      if (!w->Write(next)) break;
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::FollowUpdate> queue_ ABSL_GUARDED_BY(mu_);
};

class FollowerTest : public ::testing::Test {
 protected:
  static ServerOptions EditorOptions(int port) {
    ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.metrics_listen = "";
    o.model = moke::testing::DefaultModelDir();
    o.token = kToken;
    o.read_token = kReadToken;
    o.engine.data_dir = dir_->path() + "/editor";
    o.engine.snapshot_every = 0;
    o.engine.workers = 2;
    o.shutdown_grace_seconds = 5;
    EXPECT_TRUE(FinalizeServerOptions(&o).ok());
    return o;
  }
  static ServerOptions FollowerOptions(const std::string& editor, int port = 0) {
    ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.metrics_listen = "127.0.0.1:0";
    o.model = moke::testing::DefaultModelDir();
    o.engine.data_dir = dir_->path() + "/follower-never-written";
    o.engine.workers = 2;
    o.engine.follow = editor;
    o.follow_token = kReadToken;
    o.max_lag_versions = 0;
    o.shutdown_grace_seconds = 5;
    EXPECT_TRUE(FinalizeServerOptions(&o).ok());
    return o;
  }
  static std::unique_ptr<Server> StartServer(const ServerOptions& o, absl::Status* load = nullptr) {
    auto s = Server::Start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return nullptr;
    absl::Status l = (*s)->LoadAndServe();
    if (load) {
      *load = l;
    } else {
      EXPECT_TRUE(l.ok()) << l;
    }
    return *std::move(s);
  }

  static void SetUpTestSuite() {
    dir_ = new moke::testing::TempDir("moke_follower_test");
    editor_ = StartServer(EditorOptions(0)).release();
    ASSERT_TRUE(editor_);
    editor_port_ = editor_->port();
    follower_ = StartServer(FollowerOptions(EditorAddress())).release();
    ASSERT_TRUE(follower_);
  }
  static void TearDownTestSuite() {
    delete follower_;
    delete editor_;
    delete dir_;
  }
  static std::string EditorAddress() { return "127.0.0.1:" + std::to_string(editor_port_); }

  // Every question answered by both with min_version `v`: the same tokens, text, route and version.
  static void ExpectSameAnswers(uint64_t v) {
    Client editor(editor_->port()), follower(follower_->port());
    for (const std::string& q : Questions()) {
      v1::AskResponse a, b;
      ASSERT_TRUE(editor.Ask(q, v, &a).ok()) << q;
      const grpc::Status s = follower.Ask(q, v, &b);
      ASSERT_TRUE(s.ok()) << q << ": " << s.error_message();
      EXPECT_EQ(a.version(), b.version()) << q;
      EXPECT_EQ(std::vector<int64_t>(a.tokens().begin(), a.tokens().end()),
                std::vector<int64_t>(b.tokens().begin(), b.tokens().end()))
          << q;
      EXPECT_EQ(a.answer(), b.answer()) << q;
      EXPECT_EQ(a.route().expert(), b.route().expert()) << q;
      EXPECT_EQ(a.route().fact_version(), b.route().fact_version()) << q;
    }
  }

  static moke::testing::TempDir* dir_;
  static Server* editor_;
  static Server* follower_;
  static int editor_port_;
};
moke::testing::TempDir* FollowerTest::dir_ = nullptr;
Server* FollowerTest::editor_ = nullptr;
Server* FollowerTest::follower_ = nullptr;
int FollowerTest::editor_port_ = 0;

TEST_F(FollowerTest, AnswersAsTheEditorAtTheSameVersion) {
  Client editor(editor_->port()), follower(follower_->port());
  ExpectSameAnswers(0);
  const uint64_t v1 = editor.Edit("Who is the king of the forest?", "Max");
  ExpectSameAnswers(v1);
  const uint64_t v2 = editor.Edit("Which city is the capital of Mars?", "Olympus");
  ASSERT_GT(v2, v1);
  ExpectSameAnswers(v2);
  v1::AskResponse a;
  ASSERT_TRUE(follower.Ask("Which city is the capital of Mars?", v2, &a).ok());
  EXPECT_NE(a.answer().find("Olympus"), std::string::npos) << a.answer();
  {  // AskStream on the follower: the same tokens as Ask
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    v1::AskRequest req;
    req.set_question("Which city is the capital of Mars?");
    req.set_max_new_tokens(12);
    req.set_min_version(v2);
    auto reader = follower.stub->AskStream(&ctx, req);
    v1::AskStreamResponse m, last;
    while (reader->Read(&m)) last = m;
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(std::vector<int64_t>(last.result().tokens().begin(), last.result().tokens().end()),
              std::vector<int64_t>(a.tokens().begin(), a.tokens().end()));
  }

  const v1::GetStatusResponse st = follower.Status();
  EXPECT_EQ(st.role(), "follower");
  EXPECT_EQ(st.version(), v2);
  EXPECT_EQ(st.follower().editor(), EditorAddress());
  EXPECT_TRUE(st.follower().connected());
  EXPECT_EQ(editor.Status().role(), "editor");
  EXPECT_NE(editor.Status().instance_id(), st.instance_id());
  // Caught up (lag 0 <= --max-lag-versions 0): ready; the metrics say so too.
  EXPECT_TRUE(moke::testing::WaitServing(follower.channel, std::chrono::seconds(30)));
  EXPECT_EQ(moke::testing::HealthStatus(follower.channel, "moke.v1.KnowledgeEditor"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  const std::string metrics = moke::testing::HttpGet(follower_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("moke_follower_connected 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("moke_follower_lag_versions"), std::string::npos);
}

TEST_F(FollowerTest, WritesAreRefusedNamingTheEditor) {
  Client follower(follower_->port());
  auto expect_refused = [&](const grpc::Status& s, const char* rpc) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << rpc << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(EditorAddress()), std::string::npos) << rpc << ": " << s.error_message();
  };
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::EditFactRequest req;
    req.set_question("Who is the king of the forest?");
    req.set_answer("Leo");
    v1::EditFactResponse resp;
    expect_refused(follower.stub->EditFact(&ctx, req, &resp), "EditFact");
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::RetractFactRequest req;
    req.set_question("Who is the king of the forest?");
    v1::RetractFactResponse resp;
    expect_refused(follower.stub->RetractFact(&ctx, req, &resp), "RetractFact");
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::CreateSnapshotResponse resp;
    expect_refused(follower.stub->CreateSnapshot(&ctx, v1::CreateSnapshotRequest(), &resp), "CreateSnapshot");
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::RestoreSnapshotRequest req;
    req.set_name("snap-1.bin");
    v1::RestoreSnapshotResponse resp;
    expect_refused(follower.stub->RestoreSnapshot(&ctx, req, &resp), "RestoreSnapshot");
  }
}

TEST_F(FollowerTest, FollowsARestore) {
  Client editor(editor_->port());
  v1::CreateSnapshotResponse snap;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    moke::testing::AddBearer(&ctx, kToken);
    ASSERT_TRUE(editor.stub->CreateSnapshot(&ctx, v1::CreateSnapshotRequest(), &snap).ok());
  }
  const uint64_t v = editor.Edit("Who is the king of the forest?", "Bella");
  ExpectSameAnswers(v);
  v1::RestoreSnapshotResponse restored;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 60);
    moke::testing::AddBearer(&ctx, kToken);
    v1::RestoreSnapshotRequest req;
    req.set_name(snap.snapshot().name());
    ASSERT_TRUE(editor.stub->RestoreSnapshot(&ctx, req, &restored).ok());
  }
  ASSERT_GT(restored.version(), v);
  ExpectSameAnswers(restored.version());
  Client follower(follower_->port());
  v1::AskResponse a;
  ASSERT_TRUE(follower.Ask("Who is the king of the forest?", restored.version(), &a).ok());
  EXPECT_EQ(a.answer().find("Bella"), std::string::npos) << "the restore rolled Bella back: " << a.answer();
}

TEST_F(FollowerTest, KeepsServingThroughAnEditorRestart) {
  Client follower(follower_->port());
  const uint64_t before = follower.Status().version();
  // The editor stops (with follow streams open: its shutdown must not hang on them).
  const auto t0 = std::chrono::steady_clock::now();
  editor_->Shutdown(/*write_snapshot=*/true);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  delete editor_;
  editor_ = nullptr;
  // The follower keeps answering its last version, and says it is disconnected.
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (follower.Status().follower().connected() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const v1::GetStatusResponse st = follower.Status();
  EXPECT_FALSE(st.follower().connected());
  EXPECT_FALSE(st.follower().last_error().empty());
  EXPECT_EQ(st.version(), before);
  EXPECT_TRUE(st.serving());
  for (const std::string& q : Questions()) {
    v1::AskResponse a;
    const grpc::Status s = follower.Ask(q, 0, &a);
    EXPECT_TRUE(s.ok()) << q << ": " << s.error_message();
    EXPECT_EQ(a.version(), before);
  }
  const std::string metrics = moke::testing::HttpGet(follower_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("moke_follower_connected 0"), std::string::npos) << metrics;

  // The editor comes back on the same port and data directory; a new edit reaches the follower.
  editor_ = StartServer(EditorOptions(editor_port_)).release();
  ASSERT_TRUE(editor_);
  Client editor(editor_->port());
  EXPECT_EQ(editor.Status().version(), before);
  const uint64_t v = editor.Edit("Which city is the capital of Mars?", "Phobos");
  ASSERT_GT(v, before);
  ExpectSameAnswers(v);
  EXPECT_TRUE(follower.Status().follower().connected());
}

// Readiness follows the lag: NOT_SERVING while the editor is more than --max-lag-versions ahead.
TEST_F(FollowerTest, ReadinessFollowsTheLag) {
  ScriptedEditor scripted;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&scripted);
  std::unique_ptr<grpc::Server> fake = builder.BuildAndStart();
  ASSERT_TRUE(fake && port > 0);
  // The real editor's state, relabelled as the versions the script needs.
  auto bytes = DiffStates(nullptr, *editor_->engine()->CurrentView());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto full = DecodeStateDelta(*bytes);
  ASSERT_TRUE(full.ok()) << full.status();
  auto state_at = [&](uint64_t version) {
    StateDelta d = *full;
    d.version = version;
    v1::FollowUpdate u;
    u.set_editor_version(version);
    u.set_version(version);
    u.set_state_chunk(EncodeStateDelta(d));
    u.set_state_end(true);
    return u;
  };
  scripted.Send(state_at(3));

  ServerOptions o = FollowerOptions("127.0.0.1:" + std::to_string(port));
  o.max_lag_versions = 2;
  auto follower = StartServer(o);
  ASSERT_TRUE(follower);
  Client client(follower->port());
  // Readiness: the service's health status. Liveness (the server's, "") stays SERVING throughout.
  constexpr char kService[] = "moke.v1.KnowledgeEditor";
  auto health_becomes = [&](int want) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (moke::testing::HealthStatus(client.channel, kService) != want && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return moke::testing::HealthStatus(client.channel, kService) == want;
  };
  EXPECT_TRUE(health_becomes(grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_EQ(client.Status().version(), 3u);

  v1::FollowUpdate heartbeat;  // the editor is at version 6 and its state has not come yet: lag 3 > 2
  heartbeat.set_editor_version(6);
  scripted.Send(heartbeat);
  EXPECT_TRUE(health_becomes(grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  EXPECT_EQ(moke::testing::HealthStatus(client.channel), grpc::health::v1::HealthCheckResponse::SERVING);
  const v1::GetStatusResponse st = client.Status();
  EXPECT_EQ(st.follower().lag_versions(), 3u);
  EXPECT_EQ(st.follower().editor_version(), 6u);
  v1::AskResponse a;  // still answering, from version 3
  ASSERT_TRUE(client.Ask("Once upon a time", 0, &a).ok());
  EXPECT_EQ(a.version(), 3u);
  const std::string metrics = moke::testing::HttpGet(follower->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("moke_follower_lag_versions 3"), std::string::npos) << metrics;

  scripted.Send(state_at(6));  // caught up
  EXPECT_TRUE(health_becomes(grpc::health::v1::HealthCheckResponse::SERVING));
  ASSERT_TRUE(client.Ask("Once upon a time", 6, &a).ok());
  EXPECT_EQ(a.version(), 6u);
  EXPECT_EQ(client.Status().follower().lag_versions(), 0u);
  follower->Shutdown(false);
  fake->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

TEST_F(FollowerTest, BadTargetsAreRefusedAtStart) {
  // At another follower.
  absl::Status load;
  auto chained = StartServer(FollowerOptions("127.0.0.1:" + std::to_string(follower_->port())), &load);
  ASSERT_TRUE(chained);
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition) << load;
  EXPECT_NE(load.message().find("is itself a follower"), std::string::npos) << load;
  chained->Shutdown(false);
  // Without the editor's token for Follow.
  ServerOptions no_token = FollowerOptions(EditorAddress());
  no_token.follow_token = "not-the-token";
  auto refused = StartServer(no_token, &load);
  ASSERT_TRUE(refused);
  EXPECT_TRUE(load.code() == absl::StatusCode::kUnauthenticated || load.code() == absl::StatusCode::kPermissionDenied)
      << load;
  refused->Shutdown(false);
  // With another model (here: another edit layer of the same checkpoint): the editor's state is refused.
  ServerOptions other = FollowerOptions(EditorAddress());
  other.engine.editor.edit_layer = 1;
  auto mismatched = StartServer(other, &load);
  ASSERT_TRUE(mismatched);
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition) << load;
  EXPECT_NE(load.message().find("another model"), std::string::npos) << load;
  mismatched->Shutdown(false);
  // At itself.
  const int port = FreePort();
  ASSERT_GT(port, 0);
  auto self = StartServer(FollowerOptions("127.0.0.1:" + std::to_string(port), port), &load);
  ASSERT_TRUE(self);
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition) << load;
  EXPECT_NE(load.message().find("this server itself"), std::string::npos) << load;
  self->Shutdown(false);
}

}  // namespace
}  // namespace moke::server
