// Handler-side pieces tested without a server: status mapping, bearer tokens, proto conversions, the
// worker pool, flag parsing of bad configuration.
#include <atomic>
#include <filesystem>
#include <fstream>

#include "CLI/CLI.hpp"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/server_options.h"
#include "server/service_impl.h"
#include "server/status_util.h"
#include "server/worker_pool.h"

namespace moke::server {
namespace {

TEST(StatusUtil, CodesMapOneToOneAndLongMessagesAreTruncated) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(absl::DataLossError("x")).error_code(), grpc::DATA_LOSS);
  std::string long_msg(5000, 'a');
  long_msg += "\xE2\x9C\x93";
  const grpc::Status s = ToGrpcStatus(absl::InternalError(long_msg));
  EXPECT_LT(s.error_message().size(), kMaxStatusMessageBytes + 32);
  EXPECT_NE(s.error_message().find("truncated"), std::string::npos);
  // Truncation never splits a UTF-8 sequence.
  std::string utf8;
  while (utf8.size() < 2000) utf8 += "\xC3\xA9";
  const std::string m = ToGrpcStatus(absl::InternalError("x" + utf8)).error_message();
  EXPECT_TRUE(IsValidUtf8(m)) << m.substr(1000, 40);
  EXPECT_STREQ(StatusCodeLabel(absl::StatusCode::kResourceExhausted), "resource_exhausted");
}

TEST(Auth, BearerToken) {
  const std::string_view good = "Bearer t0k", wrong = "Bearer t0j", shorter = "Bearer t0", basic = "Basic t0k";
  EXPECT_TRUE(CheckBearerToken(nullptr, "").ok());
  EXPECT_TRUE(CheckBearerToken(&good, "t0k").ok());
  EXPECT_EQ(CheckBearerToken(nullptr, "t0k").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(&basic, "t0k").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(&wrong, "t0k").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckBearerToken(&shorter, "t0k").code(), absl::StatusCode::kPermissionDenied);
}

TEST(Conversions, ProtoRoundTrip) {
  EXPECT_FALSE(RoutingFromProto(moke::v1::ROUTING_DEFAULT).has_value());
  EXPECT_EQ(*RoutingFromProto(moke::v1::ROUTING_ROUTER), Routing::kRouter);
  EXPECT_EQ(*RoutingFromProto(moke::v1::ROUTING_ACTIVATION_ROUTER), Routing::kActivationRouter);
  Route r{1, {0.5, 2.5}, {0.25, 0.75}, 1.5, 0.9, 0.7, "Leo", 12};
  moke::v1::RouteInfo info;
  RouteToProto(r, &info);
  EXPECT_EQ(info.expert(), 1);
  EXPECT_EQ(info.deltas_size(), 2);
  EXPECT_DOUBLE_EQ(info.router_probs(1), 0.75);
  EXPECT_DOUBLE_EQ(info.subject_score(), 0.9);
  EXPECT_DOUBLE_EQ(info.relation_score(), 0.7);
  EXPECT_EQ(info.subject(), "Leo");
  EXPECT_EQ(info.fact_version(), 12u);
  storage::LogRecord rec;
  rec.edit_id = 3;
  rec.version = 4;
  rec.question = "q";
  rec.answer = "a";
  rec.request_id = "id";
  rec.expert = 2;
  moke::v1::EditRecord e;
  EditRecordToProto(rec, &e);
  EXPECT_EQ(e.edit_id(), 3u);
  EXPECT_EQ(e.request_id(), "id");
  EXPECT_EQ(DeadlineFrom(std::chrono::system_clock::time_point::max()), kNoDeadline);
  const Deadline d = DeadlineFrom(std::chrono::system_clock::now() + std::chrono::seconds(10));
  EXPECT_GT(d, Clock::now() + std::chrono::seconds(9));
  EXPECT_LT(d, Clock::now() + std::chrono::seconds(11));
}

TEST(WorkerPool, BoundedQueueAndDrainOnStop) {
  std::atomic<int> ran{0};
  std::atomic<bool> release{false};
  WorkerPool pool(1, 2);
  ASSERT_TRUE(pool.TrySubmit([&] {
    while (!release) std::this_thread::yield();
    ++ran;
  }));
  // The worker may not have taken the first task yet: fill until refused.
  int accepted = 0;
  while (pool.TrySubmit([&] { ++ran; })) ++accepted;
  EXPECT_LE(accepted, 2);
  EXPECT_GE(accepted, 1);
  release = true;
  pool.Stop();
  EXPECT_EQ(ran.load(), accepted + 1);
  EXPECT_FALSE(pool.TrySubmit([] {}));
}

TEST(ServerOptions, BadConfigNamesTheSetting) {
  const std::string dir = std::filesystem::temp_directory_path() / ("moke_opts_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto parse = [&](std::vector<std::string> args, ServerOptions* o) -> absl::Status {
    CLI::App app;
    AddServerFlags(app, o);
    args.insert(args.begin(), "moke-server");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
    return FinalizeServerOptions(o);
  };
  {
    std::ofstream(dir + "/bad.json") << R"({"num_experts": 0})";
    ServerOptions o;
    absl::Status s = parse({"--config", dir + "/bad.json"}, &o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("num_experts"), std::string::npos) << s;
  }
  {
    std::ofstream(dir + "/unknown.json") << R"({"num_expertz": 3})";
    ServerOptions o;
    absl::Status s = parse({"--config", dir + "/unknown.json"}, &o);
    EXPECT_NE(s.message().find("num_expertz"), std::string::npos) << s;
  }
  {
    ServerOptions o;
    absl::Status s = parse({"--tls-cert", dir + "/bad.json"}, &o);
    EXPECT_NE(s.message().find("--tls-cert"), std::string::npos) << s;
  }
  {
    ServerOptions o;
    absl::Status s = parse({"--model", dir + "/nope"}, &o);
    EXPECT_NE(s.message().find("--model"), std::string::npos) << s;
  }
  {
    ServerOptions o;
    ASSERT_TRUE(parse({"--workers", "0"}, &o).ok());
    auto k = KnowledgeServer::Create(o.engine, nullptr);
    ASSERT_FALSE(k.ok());
    EXPECT_NE(k.status().message().find("--workers"), std::string::npos);
  }
  {
    setenv("MOKE_MAX_QUEUE", "7", 1);
    ServerOptions o;
    ASSERT_TRUE(parse({}, &o).ok());
    EXPECT_EQ(o.engine.max_queue, 7) << "environment twin";
    unsetenv("MOKE_MAX_QUEUE");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moke::server
