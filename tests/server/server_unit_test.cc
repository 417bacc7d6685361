// Handler-side pieces tested without a server: status mapping, bearer tokens, proto conversions, the
// worker pool, flag parsing of bad configuration. The engine's parts (validation, request index, edit
// queue, version waiters) are in engine_parts_test.cc.
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
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"

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
  using V = std::vector<std::string_view>;
  EXPECT_TRUE(CheckBearerToken({}, {""}).ok()) << "no token configured: auth off";
  EXPECT_TRUE(CheckBearerToken({}, {"", ""}).ok());
  EXPECT_TRUE(CheckBearerToken(V{"Bearer t0k"}, {"t0k"}).ok());
  EXPECT_TRUE(CheckBearerToken(V{"bearer t0k"}, {"t0k"}).ok()) << "the scheme is case-insensitive";
  EXPECT_TRUE(CheckBearerToken(V{"BeArEr  t0k"}, {"t0k"}).ok());
  EXPECT_TRUE(CheckBearerToken(V{"Bearer r3ad"}, {"t0k", "r3ad"}).ok()) << "either accepted token";
  EXPECT_TRUE(CheckBearerToken(V{"Bearer r3ad"}, {"", "r3ad"}).ok());
  EXPECT_EQ(CheckBearerToken({}, {"t0k"}).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(V{"Basic t0k"}, {"t0k"}).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(V{"Bearert0k"}, {"t0k"}).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(V{"Bearer t0j"}, {"t0k"}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckBearerToken(V{"Bearer t0"}, {"t0k"}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckBearerToken(V{"Bearer "}, {"t0k"}).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckBearerToken(V{"Bearer r3ad"}, {"t0k", ""}).code(), absl::StatusCode::kPermissionDenied);
  // Exactly one header: a second one (right or wrong, first or second) is refused.
  EXPECT_EQ(CheckBearerToken(V{"Bearer t0k", "Bearer bad"}, {"t0k"}).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(CheckBearerToken(V{"Bearer bad", "Bearer t0k"}, {"t0k"}).code(), absl::StatusCode::kUnauthenticated);
}

TEST(Auth, RefusalsAreLoggedWithoutTheToken) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("auth_test", sink));
  const absl::Status s =
      AuthorizeCall("list_edits", "ipv4:127.0.0.1:4242", {"Bearer sup3r-s3cret-guess"}, {"the-real-token"});
  const absl::Status ok = AuthorizeCall("list_edits", "ipv4:127.0.0.1:4242", {"Bearer the-real-token"}, {"the-real-token"});
  spdlog::set_default_logger(previous);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ok.ok());
  const std::vector<std::string> lines = sink->last_formatted();
  ASSERT_EQ(lines.size(), 1u) << "one line for the refusal, none for the success";
  EXPECT_NE(lines[0].find("list_edits"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("127.0.0.1:4242"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("wrong bearer token"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("sup3r"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("the-real-token"), std::string::npos) << lines[0];
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
  EditEntry entry;
  entry.record.edit_id = 3;
  entry.record.version = 4;
  entry.record.question = "q";
  entry.record.answer = "a";
  entry.record.request_id = "id";
  entry.record.expert = 2;
  entry.rolled_back_version = 9;
  moke::v1::EditRecord e;
  EditEntryToProto(entry, &e);
  EXPECT_EQ(e.edit_id(), 3u);
  EXPECT_EQ(e.version(), 4u);
  EXPECT_EQ(e.request_id(), "id");
  EXPECT_EQ(e.rolled_back_version(), 9u);
  EXPECT_EQ(StopReasonToProto(AskStop::kEndOfAnswer), moke::v1::STOP_END_OF_ANSWER);
  EXPECT_EQ(StopReasonToProto(AskStop::kTokenLimit), moke::v1::STOP_TOKEN_LIMIT);
  EXPECT_EQ(DeadlineFrom(std::chrono::system_clock::time_point::max()), Clock::time_point::max());
  const Clock::time_point d = DeadlineFrom(std::chrono::system_clock::now() + std::chrono::seconds(10));
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
