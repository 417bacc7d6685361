// In-process moke-server on 127.0.0.1 with an ephemeral port, the real Editor on models/stories260k.
// One server for the whole binary (start-up costs seconds): the tests run in order in one process and
// each reads the version it starts from.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "moke/v1/moke.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "server/server.h"
#include "tests/testing/grpc_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/paths.h"
#include "tests/testing/temp_dir.h"

namespace moke::server {
namespace {

namespace v1 = ::moke::v1;
using moke::testing::SetDeadline;

constexpr char kToken[] = "s3cret-token";
constexpr char kReadToken[] = "r3ad-token";
constexpr int kMaxQueue = 2;

class ServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new moke::testing::TempDir("moke_service_test");
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "127.0.0.1:0";
    o.model = moke::testing::DefaultModelDir();
    o.token = kToken;
    o.read_token = kReadToken;
    o.engine.data_dir = dir_->path() + "/data";
    o.engine.snapshot_every = 0;
    o.engine.max_queue = kMaxQueue;
    o.engine.workers = 2;
    o.engine.max_question_bytes = 256;
    o.engine.max_answer_bytes = 64;
    o.max_message_bytes = 64 * 1024;
    ASSERT_TRUE(FinalizeServerOptions(&o).ok());
    auto s = Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    ASSERT_GT(server_->port(), 0);
    ASSERT_TRUE(server_->LoadAndServe().ok());
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
    stub_ = v1::KnowledgeEditor::NewStub(*channel_).release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete channel_;
    if (server_) server_->Shutdown(false);
    delete server_;
    delete dir_;
  }

  static grpc::Status Edit(const std::string& q, const std::string& a, v1::EditFactResponse* resp,
                           const std::string& rid = "", const char* token = kToken) {
    v1::EditFactRequest req;
    req.set_question(q);
    req.set_answer(a);
    req.set_request_id(rid);
    return Edit(req, resp, token);
  }
  static grpc::Status Edit(const v1::EditFactRequest& req, v1::EditFactResponse* resp, const char* token = kToken) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    if (token) moke::testing::AddBearer(&ctx, token);
    return stub_->EditFact(&ctx, req, resp);
  }
  static grpc::Status GetEdit(const std::string& rid, v1::GetEditResponse* resp, const char* token = kReadToken) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    if (token) moke::testing::AddBearer(&ctx, token);
    v1::GetEditRequest req;
    req.set_request_id(rid);
    return stub_->GetEdit(&ctx, req, resp);
  }
  // Sends `bytes` as the request of `method` ("/moke.v1.KnowledgeEditor/GetStatus"), bypassing the stubs.
  static grpc::Status RawCall(const std::string& method, const std::string& bytes) {
    grpc::GenericStub generic(*channel_);
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    moke::testing::AddBearer(&ctx, kToken);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) { done.set_value(s); });
    return done.get_future().get();
  }
  static grpc::Status Ask(const std::string& q, v1::AskResponse* resp, uint64_t min_version = 0,
                          double deadline_s = 60) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, deadline_s);
    v1::AskRequest req;
    req.set_question(q);
    req.set_min_version(min_version);
    return stub_->Ask(&ctx, req, resp);
  }
  static v1::GetStatusResponse Status() {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::GetStatusResponse resp;
    EXPECT_TRUE(stub_->GetStatus(&ctx, v1::GetStatusRequest(), &resp).ok());
    return resp;
  }
  static uint64_t Version() { return Status().version(); }
  static v1::ListEditsResponse Edits() {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    moke::testing::AddBearer(&ctx, kReadToken);
    v1::ListEditsRequest req;
    req.set_limit(1000);
    v1::ListEditsResponse resp;
    EXPECT_TRUE(stub_->ListEdits(&ctx, req, &resp).ok());
    return resp;
  }

  static moke::testing::TempDir* dir_;
  static Server* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
  static v1::KnowledgeEditor::Stub* stub_;
};

moke::testing::TempDir* ServiceTest::dir_ = nullptr;
Server* ServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ServiceTest::channel_ = nullptr;
v1::KnowledgeEditor::Stub* ServiceTest::stub_ = nullptr;

TEST_F(ServiceTest, HealthIsServing) {
  EXPECT_EQ(moke::testing::HealthStatus(*channel_), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(moke::testing::HealthStatus(*channel_, "moke.v1.KnowledgeEditor"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  const auto st = Status();
  EXPECT_TRUE(st.serving());
  EXPECT_EQ(st.method(), "moke");
  EXPECT_GT(st.memory_bytes().at("model"), 0);
}

TEST_F(ServiceTest, EditThenAskReadsYourWrite) {
  v1::EditFactResponse e;
  ASSERT_TRUE(Edit("The capital of Zorbia is", "Plimtown", &e).ok());
  EXPECT_GT(e.version(), 0u);
  EXPECT_GT(e.edit_id(), 0u);
  v1::AskResponse a;
  ASSERT_TRUE(Ask("The capital of Zorbia is", &a, e.version()).ok());
  EXPECT_GE(a.version(), e.version());
  EXPECT_EQ(a.answer().rfind("Plimtown", 0), 0u) << "answer: " << a.answer();
  EXPECT_EQ(a.route().expert(), e.expert());
  EXPECT_NE(a.stop_reason(), v1::STOP_UNSPECIFIED);
  // Why an answer ended: one new token allowed, and the story model does not end after "Once upon a".
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 60);
  v1::AskRequest one;
  one.set_question("Once upon a");
  one.set_max_new_tokens(1);
  v1::AskResponse short_answer;
  ASSERT_TRUE(stub_->Ask(&ctx, one, &short_answer).ok());
  EXPECT_EQ(short_answer.tokens_size(), 1);
  EXPECT_EQ(short_answer.stop_reason(), v1::STOP_TOKEN_LIMIT);
}

TEST_F(ServiceTest, RetryWithSameRequestIdAppliesOnce) {
  v1::EditFactResponse first, second;
  ASSERT_TRUE(Edit("Lily's dog is called", "Rex", &first, "req-42").ok());
  EXPECT_FALSE(first.duplicate());
  const uint64_t v = Version();
  ASSERT_TRUE(Edit("Lily's dog is called", "Rex", &second, "req-42").ok());
  EXPECT_TRUE(second.duplicate());
  EXPECT_EQ(second.edit_id(), first.edit_id());
  EXPECT_EQ(second.version(), first.version());
  EXPECT_EQ(Version(), v);
  int seen = 0;
  const v1::ListEditsResponse list = Edits();
  for (const auto& r : list.edits()) seen += r.request_id() == "req-42";
  EXPECT_EQ(seen, 1);
  // The same id with other content is refused, naming the first edit; nothing is applied.
  v1::EditFactResponse other;
  const grpc::Status reused = Edit("Lily's dog is called", "Max", &other, "req-42");
  EXPECT_EQ(reused.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(reused.error_message().find("edit " + std::to_string(first.edit_id())), std::string::npos)
      << reused.error_message();
  EXPECT_EQ(Version(), v);
  // GetEdit tells whether (and where) an edit was applied.
  v1::GetEditResponse got;
  ASSERT_TRUE(GetEdit("req-42", &got).ok());
  EXPECT_EQ(got.edit().edit_id(), first.edit_id());
  EXPECT_EQ(got.edit().version(), first.version());
  EXPECT_EQ(got.edit().answer(), "Rex");
  EXPECT_EQ(got.edit().rolled_back_version(), 0u);
  EXPECT_EQ(GetEdit("never-sent", &got).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(GetEdit("", &got).error_code(), grpc::INVALID_ARGUMENT);
}

TEST_F(ServiceTest, BadInputsAreRefusedAndVersionDoesNotMove) {
  const uint64_t v = Version();
  const uint64_t total = Edits().total();
  struct Case {
    std::string q, a;
    grpc::StatusCode code;
  };
  const std::string bad_utf8 = "caf\xC3";
  const std::vector<Case> cases = {
      {"", "x", grpc::INVALID_ARGUMENT},
      {"q", "", grpc::INVALID_ARGUMENT},
      {"Who is " + bad_utf8, "x", grpc::INVALID_ARGUMENT},
      {"q", "\xFF\xFE", grpc::INVALID_ARGUMENT},
      {"q", "over" "long \xED\xA0\x80", grpc::INVALID_ARGUMENT},  // UTF-16 surrogate
      {std::string(257, 'q'), "x", grpc::INVALID_ARGUMENT},    // over --max-question-bytes
      {"q", std::string(65, 'a'), grpc::INVALID_ARGUMENT},     // over --max-answer-bytes
      {std::string(70000, 'q'), "x", grpc::RESOURCE_EXHAUSTED},  // over --max-message-bytes
      {" \t\n ", "x", grpc::INVALID_ARGUMENT},                    // blank question
      {"q", std::string("\0\0", 2), grpc::INVALID_ARGUMENT},       // NUL-only answer
      {"q", "\xE3\x80\x80\xC2\xA0", grpc::INVALID_ARGUMENT},          // Unicode spaces only
  };
  for (const auto& c : cases) {
    v1::EditFactResponse e;
    grpc::Status s = Edit(c.q, c.a, &e);
    EXPECT_EQ(s.error_code(), c.code) << "q=" << c.q.substr(0, 20) << " a=" << c.a << ": " << s.error_message();
  }
  // More unrelated prompts than an edit log record holds: refused before anything is applied, naming the
  // limit (before the fix it was applied, and every later start failed on the record).
  {
    v1::EditFactRequest req;
    req.set_question("Who painted the blue door?");
    req.set_answer("Mia");
    for (int i = 0; i < 1025; ++i) req.add_unrelated_prompts("x");
    v1::EditFactResponse e;
    const grpc::Status s = Edit(req, &e);
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("unrelated_prompts has 1025 entries; the limit is 1024"), std::string::npos)
        << s.error_message();
    req.clear_unrelated_prompts();
    req.add_unrelated_prompts("   ");
    EXPECT_EQ(Edit(req, &e).error_code(), grpc::INVALID_ARGUMENT);
    req.clear_unrelated_prompts();
    for (int i = 0; i < 17; ++i) req.add_paraphrases("Who painted it?");
    EXPECT_EQ(Edit(req, &e).error_code(), grpc::INVALID_ARGUMENT);
  }
  v1::AskResponse a;
  EXPECT_EQ(Ask("", &a).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Ask(" \n", &a).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Ask(bad_utf8, &a).error_code(), grpc::INVALID_ARGUMENT);
  // Requests that do not parse are INVALID_ARGUMENT with a message, whichever the RPC.
  for (const char* method : {"GetStatus", "RestoreSnapshot", "ListEdits", "EditFact", "Ask", "GetEdit"}) {
    const grpc::Status s = RawCall(std::string("/moke.v1.KnowledgeEditor/") + method, "\xFF\xFF\xFF");
    EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT) << method << ": " << s.error_message();
    EXPECT_NE(s.error_message().find("does not parse"), std::string::npos) << method;
  }
  // RetractFact of a fact nobody edited: NOT_FOUND with a message, and the version stays.
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    moke::testing::AddBearer(&ctx, kToken);
    v1::RetractFactRequest req;
    req.set_question("The mayor of Atlantis is");
    v1::RetractFactResponse resp;
    const grpc::Status s = stub_->RetractFact(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
    EXPECT_FALSE(s.error_message().empty());
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    moke::testing::AddBearer(&ctx, kToken);
    v1::RetractFactRequest req;  // neither question nor edit id
    v1::RetractFactResponse resp;
    EXPECT_EQ(stub_->RetractFact(&ctx, req, &resp).error_code(), grpc::INVALID_ARGUMENT);
  }
  // min_version that never comes: DEADLINE_EXCEEDED within the deadline.
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status late = Ask("hello", &a, 1000000, 0.5);
  EXPECT_EQ(late.error_code(), grpc::DEADLINE_EXCEEDED) << late.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // Snapshot names.
  for (const auto& [name, code] : std::vector<std::pair<std::string, grpc::StatusCode>>{
           {"../edit.log", grpc::INVALID_ARGUMENT}, {"snap-999.bin", grpc::NOT_FOUND}}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    moke::testing::AddBearer(&ctx, kToken);
    v1::RestoreSnapshotRequest req;
    req.set_name(name);
    v1::RestoreSnapshotResponse resp;
    EXPECT_EQ(stub_->RestoreSnapshot(&ctx, req, &resp).error_code(), code) << name;
  }
  EXPECT_EQ(Version(), v);
  EXPECT_EQ(Edits().total(), total);
}

TEST_F(ServiceTest, EditsWithoutTheRightTokenAreRefused) {
  const uint64_t v = Version();
  v1::EditFactResponse e;
  EXPECT_EQ(Edit("q", "a", &e, "", nullptr).error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(Edit("q", "a", &e, "", "wrong").error_code(), grpc::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    ctx.AddMetadata("authorization", "Basic abc");
    v1::EditFactRequest req;
    req.set_question("q");
    req.set_answer("a");
    EXPECT_EQ(stub_->EditFact(&ctx, req, &e).error_code(), grpc::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    v1::CreateSnapshotResponse resp;
    EXPECT_EQ(stub_->CreateSnapshot(&ctx, v1::CreateSnapshotRequest(), &resp).error_code(), grpc::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    ctx.AddMetadata("authorization", "Bearer nope");
    v1::RestoreSnapshotRequest req;
    req.set_name("snap-0.bin");
    v1::RestoreSnapshotResponse resp;
    EXPECT_EQ(stub_->RestoreSnapshot(&ctx, req, &resp).error_code(), grpc::PERMISSION_DENIED);
  }
  v1::AskResponse a;
  EXPECT_TRUE(Ask("q", &a).ok()) << "reads need no token";
  // The edit history needs the read token (or the edit token); the scheme is case-insensitive; exactly
  // one authorization header.
  auto list = [](const std::vector<std::string>& headers) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    for (const auto& h : headers) ctx.AddMetadata("authorization", h);
    v1::ListEditsResponse resp;
    return stub_->ListEdits(&ctx, v1::ListEditsRequest(), &resp).error_code();
  };
  EXPECT_EQ(list({}), grpc::UNAUTHENTICATED);
  EXPECT_EQ(list({std::string("Bearer ") + kReadToken}), grpc::OK);
  EXPECT_EQ(list({std::string("bearer ") + kReadToken}), grpc::OK);
  EXPECT_EQ(list({std::string("BEARER ") + kToken}), grpc::OK);
  EXPECT_EQ(list({"Bearer wrong"}), grpc::PERMISSION_DENIED);
  EXPECT_EQ(list({std::string("Bearer ") + kReadToken, "Bearer wrong"}), grpc::UNAUTHENTICATED);
  EXPECT_EQ(list({"Bearer wrong", std::string("Bearer ") + kReadToken}), grpc::UNAUTHENTICATED);
  v1::GetEditResponse got;
  EXPECT_EQ(GetEdit("req-42", &got, nullptr).error_code(), grpc::UNAUTHENTICATED);
  // The read token does not grant edits.
  EXPECT_EQ(Edit("q", "a", &e, "", kReadToken).error_code(), grpc::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 10);
    ctx.AddMetadata("authorization", std::string("bearer ") + kToken);
    ctx.AddMetadata("authorization", "Bearer nope");
    v1::CreateSnapshotResponse resp;
    EXPECT_EQ(stub_->CreateSnapshot(&ctx, v1::CreateSnapshotRequest(), &resp).error_code(), grpc::UNAUTHENTICATED);
  }
  EXPECT_EQ(Version(), v);
}

TEST_F(ServiceTest, FullQueueIsResourceExhaustedAndNothingApplied) {
  const uint64_t v = Version();
  constexpr int kBurst = 8;
  std::vector<std::future<std::pair<grpc::Status, v1::EditFactResponse>>> calls;
  for (int i = 0; i < kBurst; ++i) {
    calls.push_back(std::async(std::launch::async, [i] {
      v1::EditFactResponse e;
      grpc::Status s = Edit("Burst question number " + std::to_string(i), "Answer" + std::to_string(i), &e);
      return std::make_pair(s, e);
    }));
  }
  int ok = 0, full = 0;
  std::set<std::string> refused;
  for (int i = 0; i < kBurst; ++i) {
    auto [s, e] = calls[i].get();
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED) << s.error_message();
      ++full;
      refused.insert("Burst question number " + std::to_string(i));
    }
  }
  EXPECT_GE(full, 1) << "a burst of " << kBurst << " edits must overflow a queue of " << kMaxQueue;
  EXPECT_EQ(Version(), v + ok);
  const v1::ListEditsResponse list = Edits();
  for (const auto& r : list.edits()) EXPECT_EQ(refused.count(r.question()), 0u) << r.question();
}

TEST_F(ServiceTest, ConcurrentAsksDuringAStreamOfEdits) {
  const uint64_t v0 = Version();
  constexpr int kEdits = 10, kAskers = 3, kMaxAsksEach = 200;
  std::atomic<uint64_t> acked{v0};
  std::atomic<bool> done{false};
  std::atomic<int> asks_ok{0}, asks_bad{0};
  std::thread editor([&] {
    for (int i = 0; i < kEdits; ++i) {
      v1::EditFactResponse e;
      grpc::Status s = Edit("Stream fact " + std::to_string(i) + " is", "Value" + std::to_string(i), &e);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (s.ok()) acked = e.version();
    }
    done = true;
  });
  std::vector<std::thread> askers;
  for (int t = 0; t < kAskers; ++t) {
    askers.emplace_back([&, t] {
      for (int n = 0; n < kMaxAsksEach && !done; ++n) {
        const uint64_t lo = acked.load();
        v1::AskResponse a;
        grpc::Status s = Ask("Stream fact " + std::to_string((n + t) % kEdits) + " is", &a);
        const uint64_t hi = acked.load() + 1;  // one edit may be published before its ack arrives
        if (s.ok() && a.version() >= lo && a.version() <= hi) {
          ++asks_ok;
        } else {
          ++asks_bad;
          ADD_FAILURE() << s.error_message() << " version " << a.version() << " not in [" << lo << ", " << hi << "]";
        }
      }
    });
  }
  editor.join();
  for (auto& t : askers) t.join();
  EXPECT_EQ(asks_bad.load(), 0);
  EXPECT_GT(asks_ok.load(), 0);
  EXPECT_EQ(Version(), v0 + kEdits);
  std::printf("concurrent: %d asks answered during %d edits\n", asks_ok.load(), kEdits);
  // The latest answers after the stream.
  int right = 0;
  for (int i = 0; i < kEdits; ++i) {
    v1::AskResponse a;
    ASSERT_TRUE(Ask("Stream fact " + std::to_string(i) + " is", &a, v0 + kEdits).ok());
    EXPECT_EQ(a.version(), v0 + kEdits);
    right += a.answer().rfind("Value" + std::to_string(i), 0) == 0;
  }
  std::printf("concurrent: %d of %d stream facts answered with their edited value\n", right, kEdits);
}

TEST_F(ServiceTest, SnapshotCreateListRestore) {
  grpc::ClientContext c1;
  SetDeadline(&c1, 60);
  moke::testing::AddBearer(&c1, kToken);
  v1::CreateSnapshotResponse snap;
  ASSERT_TRUE(stub_->CreateSnapshot(&c1, v1::CreateSnapshotRequest(), &snap).ok());
  const uint64_t v = Version();
  EXPECT_EQ(snap.snapshot().version(), v);
  EXPECT_EQ(snap.snapshot().name(), "snap-" + std::to_string(v) + ".bin");
  EXPECT_GT(snap.snapshot().bytes(), 0);

  v1::EditFactResponse e;
  ASSERT_TRUE(Edit("Tom's cat is", "Whiskers", &e).ok());
  EXPECT_EQ(e.version(), v + 1);

  grpc::ClientContext c2;
  SetDeadline(&c2, 10);
  v1::ListSnapshotsResponse list;
  ASSERT_TRUE(stub_->ListSnapshots(&c2, v1::ListSnapshotsRequest(), &list).ok());
  bool found = false;
  for (const auto& s : list.snapshots()) found |= s.name() == snap.snapshot().name();
  EXPECT_TRUE(found);

  grpc::ClientContext c3;
  SetDeadline(&c3, 60);
  moke::testing::AddBearer(&c3, kToken);
  v1::RestoreSnapshotRequest req;
  req.set_name(snap.snapshot().name());
  v1::RestoreSnapshotResponse restored;
  ASSERT_TRUE(stub_->RestoreSnapshot(&c3, req, &restored).ok());
  // A restore is a new version above every earlier one: version v + 1 (the edit) is never reused.
  EXPECT_EQ(restored.version(), v + 2);
  v1::AskResponse a;
  ASSERT_TRUE(Ask("Tom's cat is", &a, v + 1).ok());
  EXPECT_EQ(a.version(), v + 2);
  // The rolled-back edit is marked in the history; the log keeps every edit.
  const v1::ListEditsResponse history = Edits();
  ASSERT_GE(history.edits_size(), 1);
  const v1::EditRecord& last = history.edits(history.edits_size() - 1);
  EXPECT_EQ(last.edit_id(), e.edit_id());
  EXPECT_EQ(last.rolled_back_version(), v + 2);
  // Edits continue above the restore.
  ASSERT_TRUE(Edit("Tom's cat is", "Mittens", &e).ok());
  EXPECT_EQ(e.version(), v + 3);
  // A snapshot of a version this history never reached is refused.
  std::filesystem::copy_file(dir_->path() + "/data/snapshots/" + snap.snapshot().name(),
                             dir_->path() + "/data/snapshots/snap-999.bin");
  grpc::ClientContext c4;
  SetDeadline(&c4, 60);
  moke::testing::AddBearer(&c4, kToken);
  req.set_name("snap-999.bin");
  EXPECT_EQ(stub_->RestoreSnapshot(&c4, req, &restored).error_code(), grpc::FAILED_PRECONDITION);
  std::filesystem::remove(dir_->path() + "/data/snapshots/snap-999.bin");
  EXPECT_EQ(Version(), v + 3);
}

TEST_F(ServiceTest, MetricsScrapePassesPromtool) {
  const std::string resp = moke::testing::HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_EQ(resp.rfind("HTTP/1.1 200 OK", 0), 0u) << resp.substr(0, 200);
  const std::string body = resp.substr(resp.find("\r\n\r\n") + 4);
  for (const char* name : {"moke_requests_total{", "moke_edit_duration_seconds_bucket", "moke_read_duration_seconds_bucket",
                           "moke_edit_queue_depth", "moke_edit_queue_wait_seconds_bucket", "moke_edit_expert_total{",
                           "moke_ask_route_total{", "moke_knowledge_version", "moke_replay_buffer_size",
                           "moke_memory_bytes{part=\"model\"}", "outcome=\"resource_exhausted\"",
                           "outcome=\"unauthenticated\"", "outcome=\"duplicate\""}) {
    EXPECT_NE(body.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(moke::testing::HttpGet(server_->metrics_port(), "/nope").rfind("HTTP/1.1 404", 0), 0u);
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus): scrape checked by content only";
  }
  const std::string path = dir_->path() + "/scrape.txt";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(body.data(), 1, body.size(), f);
    std::fclose(f);
  }
  const std::string cmd = "promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace moke::server
