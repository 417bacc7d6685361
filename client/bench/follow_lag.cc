#include "client/bench/follow_lag.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/bench/bench_client.h"
#include "client/bench/metrics.h"
#include "grpcpp/grpcpp.h"
#include "moke/v1/moke.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace moke::bench {

namespace {

namespace v1 = ::moke::v1;
using Clock = std::chrono::steady_clock;

absl::StatusOr<uint64_t> FollowerVersion(v1::KnowledgeEditor::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetStatusResponse resp;
  const grpc::Status s = stub.GetStatus(&ctx, v1::GetStatusRequest(), &resp);
  if (!s.ok()) return FromGrpc(s, "GetStatus (follower)");
  if (resp.role() != "follower") return absl::InvalidArgumentError("--follower: that server is not a follower");
  return resp.version();
}

}  // namespace

absl::Status RunFollowLag(const FollowLagOptions& o) {
  for (const std::string* a : {&o.editor, &o.follower}) {
    if (!IsLoopbackAddress(*a)) {
      return absl::InvalidArgumentError(absl::StrCat("follow-lag only targets loopback servers; refusing \"", *a, "\""));
    }
  }
  if (o.edits < 1 || o.edits > kMaxFollowLagEdits) {
    return absl::InvalidArgumentError(absl::StrCat("--edits: must be in [1, ", kMaxFollowLagEdits, "]"));
  }
  auto editor = v1::KnowledgeEditor::NewStub(grpc::CreateChannel(o.editor, grpc::InsecureChannelCredentials()));
  auto follower = v1::KnowledgeEditor::NewStub(grpc::CreateChannel(o.follower, grpc::InsecureChannelCredentials()));
  const std::string run = absl::StrCat("follow-lag-", std::chrono::system_clock::now().time_since_epoch().count());
  std::vector<double> lags;
  for (int i = 0; i < o.edits; ++i) {
    v1::EditFactRequest req;
    req.set_question(absl::StrCat("What is the name of the guardian of tower ", i, "?"));
    req.set_answer(i % 2 ? "Rosa" : "Max");
    req.set_request_id(absl::StrCat(run, "-", i));
    v1::EditFactResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
    if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
    if (grpc::Status s = editor->EditFact(&ctx, req, &resp); !s.ok()) return FromGrpc(s, "EditFact (editor)");
    const auto acked = Clock::now();
    while (true) {
      auto v = FollowerVersion(*follower);
      if (!v.ok()) return v.status();
      if (*v >= resp.version()) break;
      if (Clock::now() - acked > std::chrono::duration<double>(o.wait_s)) {
        return absl::DeadlineExceededError(absl::StrCat("the follower did not reach version ", resp.version(), " in ",
                                                        o.wait_s, " s (it is at ", *v, ")"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    lags.push_back(std::chrono::duration<double>(Clock::now() - acked).count());
  }
  const LatencySummary s = SummarizeLatency(lags);
  std::cout << absl::StrFormat("follow-lag: %d edits; follower at the edit's version after p50 %.1f ms, p95 %.1f ms, "
                               "max %.1f ms (from the EditFact acknowledgement)\n",
                               s.count, 1e3 * s.median, 1e3 * s.p95, 1e3 * s.max);
  if (!o.out_dir.empty()) {
    std::filesystem::create_directories(o.out_dir);
    nlohmann::json j = {{"edits", s.count}, {"p50_s", s.median}, {"p95_s", s.p95}, {"max_s", s.max}, {"lags_s", lags}};
    std::ofstream(o.out_dir + "/follow_lag.json") << j.dump(2) << "\n";
  }
  return absl::OkStatus();
}

}  // namespace moke::bench
