// Questions at scale (issue 17), in-process on 127.0.0.1 with ephemeral ports: a server that batches Asks
// (--max-batch 8) answers 16 concurrent clients with the same tokens as one that decodes each Ask alone
// (--max-batch 1); AskStream streams every token and then the whole answer; a cancelled stream stops
// decoding on the server.
#include <atomic>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "moke/v1/moke.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/grpc_client.h"
#include "tests/testing/http_get.h"
#include "tests/testing/paths.h"
#include "tests/testing/temp_dir.h"

namespace moke::server {
namespace {

namespace v1 = ::moke::v1;
using moke::testing::SetDeadline;

constexpr int kLongAnswer = 480;  // the servers' largest max_new_tokens

struct Running {
  std::unique_ptr<Server> server;
  std::unique_ptr<v1::KnowledgeEditor::Stub> stub;
};

Running StartServer(const std::string& data_dir, int max_batch) {
  ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "127.0.0.1:0";
  o.model = moke::testing::DefaultModelDir();
  o.engine.data_dir = data_dir;
  o.engine.snapshot_every = 0;
  o.engine.workers = 2;
  o.engine.max_batch = max_batch;
  EXPECT_TRUE(FinalizeServerOptions(&o).ok());
  o.engine.editor.max_iterations = 10;
  o.engine.editor.max_new_tokens = kLongAnswer;
  Running r;
  auto s = Server::Start(o);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return r;
  r.server = std::move(*s);
  EXPECT_TRUE(r.server->LoadAndServe().ok());
  r.stub = v1::KnowledgeEditor::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(r.server->port()), grpc::InsecureChannelCredentials()));
  return r;
}

const std::vector<std::string>& Questions() {
  static const std::vector<std::string> q = {
      "Once upon a time", "The cat sat on the mat", "Tom and Sue went to the park", "The sun was hot",
      "One day, a little bird", "Mom made a big cake", "The boy had a red ball", "She liked to sing",
      "The dog ran fast", "It was a rainy day", "There was a tall tree", "The girl found a shiny rock",
      "Ben wanted to fly", "The fish swam in the sea", "A frog jumped", "Grandma told a story"};
  return q;
}

class ScaleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new moke::testing::TempDir("moke_scale_test");
    batched_ = new Running(StartServer(dir_->path() + "/batched", 8));
    alone_ = new Running(StartServer(dir_->path() + "/alone", 1));
  }
  static void TearDownTestSuite() {
    for (Running* r : {batched_, alone_}) {
      if (r->server) r->server->Shutdown(false);
      delete r;
    }
    delete dir_;
  }

  static grpc::Status Ask(v1::KnowledgeEditor::Stub* stub, const std::string& q, int max_new, v1::AskResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 120);
    v1::AskRequest req;
    req.set_question(q);
    req.set_max_new_tokens(max_new);
    return stub->Ask(&ctx, req, resp);
  }

  static double MetricValue(const Running& r, const std::string& series) {
    const std::string body = moke::testing::HttpGet(r.server->metrics_port(), "/metrics");
    const size_t at = body.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stod(body.substr(at + series.size() + 2));
  }

  static moke::testing::TempDir* dir_;
  static Running* batched_;
  static Running* alone_;
};
moke::testing::TempDir* ScaleTest::dir_ = nullptr;
Running* ScaleTest::batched_ = nullptr;
Running* ScaleTest::alone_ = nullptr;

TEST_F(ScaleTest, BatchedAsksGiveTheTokensOfAsksDecodedAlone) {
  // 16 clients at once, each its own question and token limit, on both servers.
  constexpr int kClients = 16;
  std::vector<v1::AskResponse> batched(kClients), alone(kClients);
  std::vector<grpc::Status> status(2 * kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    const int max_new = 4 + (c * 5) % 17;
    clients.emplace_back([&, c, max_new] { status[c] = Ask(batched_->stub.get(), Questions()[c], max_new, &batched[c]); });
    clients.emplace_back(
        [&, c, max_new] { status[kClients + c] = Ask(alone_->stub.get(), Questions()[c], max_new, &alone[c]); });
  }
  for (auto& t : clients) t.join();
  for (int c = 0; c < kClients; ++c) {
    ASSERT_TRUE(status[c].ok()) << status[c].error_message();
    ASSERT_TRUE(status[kClients + c].ok()) << status[kClients + c].error_message();
    EXPECT_EQ(std::vector<int64_t>(batched[c].tokens().begin(), batched[c].tokens().end()),
              std::vector<int64_t>(alone[c].tokens().begin(), alone[c].tokens().end()))
        << Questions()[c];
    EXPECT_EQ(batched[c].answer(), alone[c].answer());
    EXPECT_EQ(batched[c].stop_reason(), alone[c].stop_reason());
    EXPECT_FALSE(batched[c].answer().empty());
  }
  // The batched server's answers went through the batched decoder; the other's never did. (How many rows
  // a step had depends on when the clients' calls arrive; rows decoded together are tested in
  // batch_decode_test and ask_batch_test, without a clock.)
  EXPECT_GT(MetricValue(*batched_, "moke_decode_batch_rows_count"), 0);
  EXPECT_EQ(MetricValue(*alone_, "moke_decode_batch_rows_count"), 0);
}

TEST_F(ScaleTest, AskStreamSendsEveryTokenThenTheWholeAnswer) {
  for (Running* r : {batched_, alone_}) {  // AskStream goes through the batched decoder on both
    for (const std::string& q : {Questions()[0], Questions()[5]}) {
      v1::AskResponse want;
      ASSERT_TRUE(Ask(r->stub.get(), q, 12, &want).ok());
      grpc::ClientContext ctx;
      SetDeadline(&ctx, 120);
      v1::AskRequest req;
      req.set_question(q);
      req.set_max_new_tokens(12);
      auto reader = r->stub->AskStream(&ctx, req);
      v1::AskStreamResponse m;
      std::vector<int64_t> tokens;
      std::string text;
      int messages = 0, results = 0;
      v1::AskResponse result;
      while (reader->Read(&m)) {
        ++messages;
        tokens.insert(tokens.end(), m.tokens().begin(), m.tokens().end());
        text += m.text();
        if (m.has_result()) {
          ++results;
          result = m.result();
        }
      }
      ASSERT_TRUE(reader->Finish().ok());
      EXPECT_EQ(results, 1);
      EXPECT_EQ(messages, want.tokens_size() + 1) << "one message per token, then the result";
      EXPECT_EQ(tokens, std::vector<int64_t>(want.tokens().begin(), want.tokens().end()));
      EXPECT_EQ(text, want.answer());
      EXPECT_EQ(result.answer(), want.answer());
      EXPECT_EQ(result.stop_reason(), want.stop_reason());
      EXPECT_EQ(result.version(), want.version());
    }
  }
  // Bad requests are refused like Ask's.
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10);
  v1::AskRequest empty;
  auto reader = batched_->stub->AskStream(&ctx, empty);
  v1::AskStreamResponse m;
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::INVALID_ARGUMENT);
}

// A cancelled stream: the client sees CANCELLED, the server ends the call, and the decoder lets the
// answer go. Whether the server notices the cancellation before the answer's natural end is a race with
// the decoder (the cancellation comes on gRPC's thread), so the test asserts no speed: when the server's
// answer ended CANCELLED, its decoding stopped before the answer's end (the budget's flag, checked before
// every step); either way the call ends and no row of it is stepped afterwards. That the flag stops a row
// at its next step is tested without a race in ask_batch_test.
TEST_F(ScaleTest, ACancelledStreamStopsDecoding) {
  const std::string question = "Once upon a time";
  v1::AskResponse full;
  ASSERT_TRUE(Ask(alone_->stub.get(), question, kLongAnswer, &full).ok());
  ASSERT_GE(full.tokens_size(), 200) << "the uncancelled answer is long";
  const std::string cancelled = "moke_requests_total{outcome=\"cancelled\",rpc=\"ask_stream\"}";
  const std::string ok = "moke_requests_total{outcome=\"ok\",rpc=\"ask_stream\"}";
  const double before = MetricValue(*batched_, cancelled), ok_before = MetricValue(*batched_, ok);
  const double rows_before = MetricValue(*batched_, "moke_decode_batch_rows_sum");
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 120);
  v1::AskRequest req;
  req.set_question(question);
  req.set_max_new_tokens(kLongAnswer);
  auto reader = batched_->stub->AskStream(&ctx, req);
  v1::AskStreamResponse m;
  ASSERT_TRUE(reader->Read(&m));
  ctx.TryCancel();
  while (reader->Read(&m)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  // The server counts the call's outcome when the decoder lets the answer go (polled; the limit is only a
  // backstop for a server that never ends the call).
  const auto ended = [&] { return MetricValue(*batched_, cancelled) + MetricValue(*batched_, ok) - before - ok_before; };
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (ended() < 1 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(ended(), 1) << "the server ended the call once";
  const double rows = MetricValue(*batched_, "moke_decode_batch_rows_sum") - rows_before;
  // One step per token after the first, and one more when the answer ends at an end-of-sequence token.
  if (MetricValue(*batched_, cancelled) == before + 1) {
    // CANCELLED comes only from the budget's check before a step: the answer's last step was not run.
    EXPECT_LE(rows, full.tokens_size() - 1) << "decoding stopped before the answer's end";
  } else {
    EXPECT_GE(rows, full.tokens_size() - 1) << "the decoder finished first: the whole answer";
    EXPECT_LE(rows, full.tokens_size());
  }
  // Nothing of the call is decoded after its end: the next Ask's steps are the only ones added.
  v1::AskResponse next;
  ASSERT_TRUE(Ask(batched_->stub.get(), "The dog ran fast", 4, &next).ok());
  EXPECT_LE(MetricValue(*batched_, "moke_decode_batch_rows_sum") - rows_before - rows, 3);
}

}  // namespace
}  // namespace moke::server
