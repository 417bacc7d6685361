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
    // How many rows a step had depends on when the askers' requests arrive; the upper bound does not.
    EXPECT_LE(most_rows.load(), max_batch);
  }

  // Rows decoded together, without a clock: an idle decoder with a window longer than any test waits
  // until max_batch requests wait (Ask returns once planned), so its first step has all of them.
  AskBatcher::Options o;
  o.max_batch = 4;
  o.window = std::chrono::hours(1);
  std::vector<int> steps;  // on_step runs on the decoder thread; read after every answer is done
  std::mutex steps_mu;
  o.on_step = [&](int rows) {
    std::lock_guard<std::mutex> lock(steps_mu);
    steps.push_back(rows);
  };
  auto batcher = AskBatcher::Create(o, view);
  ASSERT_TRUE(batcher.ok()) << batcher.status();
  std::vector<size_t> chosen;  // four answers of more than one token: none ends with the prompt's forward
  for (size_t i = 0; i < cases.size() && chosen.size() < 4; ++i) {
    if (cases[i].alone.tokens.size() > 1) chosen.push_back(i);
  }
  ASSERT_EQ(chosen.size(), 4u);
  std::vector<Answer> answers(chosen.size());
  for (size_t j = 0; j < chosen.size(); ++j) {
    AskInto(**batcher, cases[chosen[j]].view, cases[chosen[j]].question, cases[chosen[j]].max_new, &answers[j]);
  }
  for (size_t j = 0; j < chosen.size(); ++j) {
    answers[j].done.WaitForNotification();
    ASSERT_TRUE(answers[j].result.ok()) << answers[j].result.status();
    EXPECT_EQ(answers[j].result->tokens, cases[chosen[j]].alone.tokens) << cases[chosen[j]].question;
  }
  std::lock_guard<std::mutex> lock(steps_mu);
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front(), 4) << "the first step decoded the four answers together";
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
