// AskBatcher on an edited model: batched answers equal KnowledgeView::Ask's (tokens, text, route, stop,
// version) for questions routed to different experts and to none, asked from several threads at once;
// streamed pieces add up to the answer; a cancelled request leaves the batch with CANCELLED while the
// others finish; a stopped batcher refuses.
#include "core/editor/ask_batch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/synchronization/notification.h"
#include "core/editor/editor.h"
#include "tests/testing/paths.h"

namespace moke {
namespace {

struct Answer {
  absl::StatusOr<AskResult> result = absl::UnknownError("not answered");
  std::vector<int64_t> streamed_tokens;
  std::string streamed_text;
  absl::Notification done;
};

class AskBatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EditorOptions o;
    o.model_dir = testing::DefaultModelDir();
    o.threads = 2;
    o.max_iterations = 12;  // the experts need only differ from the original weights here, not be good
    auto editor = Editor::Create(o);
    ASSERT_TRUE(editor.ok()) << editor.status();
    editor_ = std::move(*editor).release();
    base_ = new std::shared_ptr<const KnowledgeView>(editor_->Current());
    const EditRequest edits[] = {
        {"The name of the mother of Leonardo DiCaprio is", "Irmelin", {}, "Leonardo DiCaprio", {}},
        {"The capital city of Norway is", "Bergen", {}, "Norway", {}},
        {"The favourite food of Lily the cat is", "blue cheese", {}, "Lily the cat", {}},
    };
    for (const EditRequest& e : edits) {
      auto r = editor_->ApplyEdit(e);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  static void TearDownTestSuite() {
    delete base_;
    delete editor_;
  }

  static std::vector<std::string> Questions() {
    return {"The name of the mother of Leonardo DiCaprio is", "The name of the mother of Leo DiCaprio is",
            "The capital city of Norway is", "The favourite food of Lily the cat is",
            "The name of the mother of Kanye West is", "Once upon a time", "The dog ran fast",
            "Tom and Sue went to the park", "One day, a little bird", "What is the capital of France?",
            "The sun was hot", "She liked to sing", "Grandma told a story", "Über den Wolken"};
  }

  static Editor* editor_;
  static std::shared_ptr<const KnowledgeView>* base_;
};
Editor* AskBatchTest::editor_ = nullptr;
std::shared_ptr<const KnowledgeView>* AskBatchTest::base_ = nullptr;

void AskInto(AskBatcher& b, std::shared_ptr<const KnowledgeView> view, const std::string& q, int max_new,
             Answer* a, Budget budget = Budget()) {
  b.Ask(
      std::move(view), q, max_new, std::nullopt, budget,
      [a](const AskPiece& p) {
        a->streamed_tokens.insert(a->streamed_tokens.end(), p.tokens.begin(), p.tokens.end());
        a->streamed_text += p.text;
      },
      [a](absl::StatusOr<AskResult> r) {
        a->result = std::move(r);
        a->done.Notify();
      });
}

TEST_F(AskBatchTest, BatchedAnswersEqualOneByOneAcrossExpertsAndVersions) {
  auto view = editor_->Current();
  ASSERT_EQ(view->version(), 3u);
  const auto questions = Questions();
  // Each question at two token limits, from the edited version and from the unedited one.
  struct Case {
    std::shared_ptr<const KnowledgeView> view;
    std::string question;
    int max_new;
    AskResult alone;
  };
  std::vector<Case> cases;
  std::set<int> experts;
  for (const auto& v : {view, *base_}) {
    for (const std::string& q : questions) {
      for (int max_new : {16, 5}) {
        auto alone = v->Ask(q, max_new);
        ASSERT_TRUE(alone.ok()) << alone.status();
        experts.insert(alone->route.expert);
        cases.push_back({v, q, max_new, *alone});
      }
    }
  }
  EXPECT_GE(experts.size(), 3u) << "questions routed to at least two experts and to none";

  for (int max_batch : {1, 4, 16}) {
    AskBatcher::Options o;
    o.max_batch = max_batch;
    o.window = std::chrono::microseconds(500);
    std::atomic<int> most_rows{0};
    o.on_step = [&](int rows) { most_rows = std::max(most_rows.load(), rows); };
    auto batcher = AskBatcher::Create(o, view);
    ASSERT_TRUE(batcher.ok()) << batcher.status();
    std::vector<Answer> answers(cases.size());
    std::vector<std::thread> askers;
    for (int t = 0; t < 3; ++t) {  // three threads plan and prefill, as the server's workers do
      askers.emplace_back([&, t] {
        for (size_t i = t; i < cases.size(); i += 3) AskInto(**batcher, cases[i].view, cases[i].question, cases[i].max_new, &answers[i]);
      });
    }
    for (auto& t : askers) t.join();
    for (size_t i = 0; i < cases.size(); ++i) {
      answers[i].done.WaitForNotification();
      const Case& c = cases[i];
      ASSERT_TRUE(answers[i].result.ok()) << answers[i].result.status();
      const AskResult& got = *answers[i].result;
      EXPECT_EQ(got.tokens, c.alone.tokens) << c.question << " (max_batch " << max_batch << ")";
      EXPECT_EQ(got.answer, c.alone.answer) << c.question;
      EXPECT_EQ(got.stop, c.alone.stop) << c.question;
      EXPECT_EQ(got.version, c.view->version()) << "answered from the view it was given";
      EXPECT_EQ(got.route.expert, c.alone.route.expert) << c.question;
      EXPECT_EQ(got.route.fact_version, c.alone.route.fact_version) << c.question;
      EXPECT_EQ(answers[i].streamed_tokens, got.tokens) << "every token was streamed, in order";
      EXPECT_EQ(answers[i].streamed_text, got.answer) << "the streamed text adds up to the answer";
    }
    EXPECT_LE(most_rows.load(), max_batch);
    if (max_batch > 1) EXPECT_GT(most_rows.load(), 1) << "some steps decoded several answers";
  }
}

TEST_F(AskBatchTest, ACancelledAnswerLeavesTheBatchAndTheOthersFinish) {
  auto view = editor_->Current();
  AskBatcher::Options o;
  o.max_batch = 4;
  auto batcher = AskBatcher::Create(o, view);
  ASSERT_TRUE(batcher.ok());
  auto flag = std::make_shared<std::atomic<bool>>(false);
  Budget cancellable{Budget::Clock::time_point::max(), flag};
  Answer cancelled, other;
  // The cancelled request is cancelled from its own first streamed piece after the prefill's: it never
  // reaches its token limit.
  std::atomic<int> pieces{0};
  (*batcher)->Ask(
      view, "Once upon a time", 64, std::nullopt, cancellable,
      [&](const AskPiece& p) {
        cancelled.streamed_tokens.insert(cancelled.streamed_tokens.end(), p.tokens.begin(), p.tokens.end());
        if (++pieces == 3) flag->store(true);
      },
      [&](absl::StatusOr<AskResult> r) {
        cancelled.result = std::move(r);
        cancelled.done.Notify();
      });
  AskInto(**batcher, view, "The dog ran fast", 32, &other);
  cancelled.done.WaitForNotification();
  other.done.WaitForNotification();
  EXPECT_EQ(cancelled.result.status().code(), absl::StatusCode::kCancelled) << cancelled.result.status();
  EXPECT_LT(cancelled.streamed_tokens.size(), 64u);
  ASSERT_TRUE(other.result.ok()) << other.result.status();
  EXPECT_EQ(other.result->tokens, view->Ask("The dog ran fast", 32)->tokens);

  // A deadline already passed: DEADLINE_EXCEEDED without a token.
  Answer late;
  AskInto(**batcher, view, "The dog ran fast", 8, &late, Budget{Budget::Clock::now(), nullptr});
  late.done.WaitForNotification();
  EXPECT_EQ(late.result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(late.streamed_tokens.empty());

  (*batcher)->Stop();
  Answer refused;
  AskInto(**batcher, view, "The dog ran fast", 8, &refused);
  ASSERT_TRUE(refused.done.HasBeenNotified()) << "answered inline";
  EXPECT_EQ(refused.result.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(AskBatchTest, BadQuestionsAndOptions) {
  auto view = editor_->Current();
  AskBatcher::Options bad;
  bad.max_batch = 0;
  EXPECT_EQ(AskBatcher::Create(bad, view).status().code(), absl::StatusCode::kInvalidArgument);
  auto batcher = AskBatcher::Create(AskBatcher::Options{}, view);
  ASSERT_TRUE(batcher.ok());
  std::string huge;
  for (int i = 0; i < 600; ++i) huge += " word";
  Answer a;
  AskInto(**batcher, view, huge, 8, &a);
  a.done.WaitForNotification();
  EXPECT_EQ(a.result.status().code(), absl::StatusCode::kInvalidArgument) << a.result.status();
}

}  // namespace
}  // namespace moke
