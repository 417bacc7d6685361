// Rehearsal planning and the replay buffer's rules, on plain histories (no model).
#include "core/editor/rehearsal.h"

#include <gtest/gtest.h>

#include <set>

namespace moke {
namespace {

std::vector<HeldEdit> History(const std::vector<std::pair<std::string, int>>& edits) {
  std::vector<HeldEdit> h;
  for (const auto& [q, e] : edits) {
    HeldEdit x;
    x.question = q;
    x.expert = e;
    h.push_back(x);
  }
  return h;
}

TEST(PlanRehearsal, RecentHalfThenASeededDrawOfTheRestOfTheSameExpert) {
  // Expert 0 holds q0..q9 (indices 0, 2, ..., 18); expert 1 holds the odd indices.
  std::vector<std::pair<std::string, int>> e;
  for (int i = 0; i < 20; ++i) e.push_back({"q" + std::to_string(i), i % 2});
  auto history = History(e);
  std::mt19937_64 rng(7);
  const LiveAfter live(history, {});
  auto plan = PlanRehearsal(history, 0, live, 4, rng);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0], 16u);  // the most recent half (2) in order
  EXPECT_EQ(plan[1], 18u);
  std::set<size_t> older(plan.begin() + 2, plan.end());
  EXPECT_EQ(older.size(), 2u);
  for (size_t i : older) {
    EXPECT_EQ(i % 2, 0u) << "only expert 0's edits";
    EXPECT_LT(i, 16u);
  }
  // The same seed gives the same plan.
  std::mt19937_64 again(7);
  EXPECT_EQ(PlanRehearsal(history, 0, live, 4, again), plan);
}

// A fact re-edited in other words keeps its older wordings (oldest first, no repeats, never the new
// question), carried from edit to edit and bounded.
TEST(EarlierWordings, CollectsTheReplacedQuestionsAndTheirs) {
  auto history = History({{"Who made X?", 0}, {"Which firm built X?", 0}, {"Where is Y?", 1}});
  history[1].earlier_wordings = {"Who made X?", "X was made by"};
  EXPECT_EQ(EarlierWordings(history, {0, 1}, "Which company made X?"),
            (std::vector<std::string>{"Who made X?", "X was made by", "Which firm built X?"}));
  EXPECT_EQ(EarlierWordings(history, {1}, "Which firm built X?"),
            (std::vector<std::string>{"Who made X?", "X was made by"}));
  EXPECT_TRUE(EarlierWordings(history, {0}, "Who made X?").empty()) << "a re-edit in the same words";
  EXPECT_TRUE(EarlierWordings(history, {}, "Anything?").empty());
  for (size_t i = 0; i < kMaxEarlierWordings + 3; ++i) history[1].earlier_wordings.push_back("w" + std::to_string(i));
  const auto bounded = EarlierWordings(history, {1}, "new");
  ASSERT_EQ(bounded.size(), kMaxEarlierWordings);
  EXPECT_EQ(bounded.back(), "Which firm built X?") << "the newest kept";
}

TEST(RehearsedWording, TheQuestionOrAnEarlierWordingDrawnWithoutDrawingWhenThereIsNone) {
  HeldEdit plain;
  plain.question = "Who made X?";
  std::mt19937_64 rng(3), untouched(3);
  EXPECT_EQ(RehearsedWording(plain, rng), "Who made X?");
  EXPECT_EQ(rng(), untouched()) << "no draw: streams without re-edits in other words train as before";
  HeldEdit reworded = plain;
  reworded.earlier_wordings = {"Which firm built X?", "X was made by"};
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) seen.insert(RehearsedWording(reworded, rng));
  EXPECT_EQ(seen, (std::set<std::string>{"Who made X?", "Which firm built X?", "X was made by"}));
}

TEST(PlanRehearsal, SkipsSupersededEditsAndTheFactBeingReEdited) {
  auto history = History({{"a", 0}, {"b", 0}, {"c", 0}});
  history[0].superseded = true;
  std::mt19937_64 rng(1);
  const LiveAfter live(history, {1});  // the incoming edit replaces "b"
  EXPECT_EQ(PlanRehearsal(history, 0, live, 16, rng), std::vector<size_t>({2}));
  EXPECT_TRUE(PlanRehearsal(history, 0, live, 0, rng).empty()) << "retention 0: none";
}

TEST(ReplayBuffer, PicksAnotherExpertsLiveEditAndDeletesItOnlyWhenFull) {
  auto history = History({{"a", 0}, {"b", 1}, {"c", 1}, {"d", 2}});
  ReplayBuffer buf(3);
  buf.Commit(std::nullopt, 0, 0);
  buf.Commit(std::nullopt, 1, 1);
  std::mt19937_64 rng(3);
  const LiveAfter all(history, {});
  // Expert 1 editing: only entry 0 (expert 0) qualifies.
  auto slot = buf.Pick(1, all, rng);
  ASSERT_TRUE(slot.has_value());
  EXPECT_EQ(*slot, 0u);
  // Not full (2 of 3): the picked entry stays, the new edit is added.
  buf.Commit(slot, 2, 1);
  ASSERT_EQ(buf.size(), 3);
  // Full: a picked entry is deleted, then the new edit takes its place at the end.
  slot = buf.Pick(2, all, rng);
  ASSERT_TRUE(slot.has_value());
  const size_t picked_edit = buf.entries()[*slot].edit;
  buf.Commit(slot, 3, 2);
  ASSERT_EQ(buf.size(), 3);
  for (const auto& e : buf.entries()) EXPECT_NE(e.edit, picked_edit);
  EXPECT_EQ(buf.entries().back().edit, 3u);
  // Nothing of another expert that stays live: no pick. Edit "a" is the fact being re-edited.
  ReplayBuffer only_a(2);
  only_a.Commit(std::nullopt, 0, 0);
  EXPECT_FALSE(only_a.Pick(1, LiveAfter(history, {0}), rng).has_value());
  EXPECT_FALSE(only_a.Pick(0, all, rng).has_value());
}

TEST(ReplayBuffer, WithoutAPickTheOldestMakesRoom) {
  ReplayBuffer buf(2);
  buf.Commit(std::nullopt, 0, 0);
  buf.Commit(std::nullopt, 1, 0);
  buf.Commit(std::nullopt, 2, 0);
  ASSERT_EQ(buf.size(), 2);
  EXPECT_EQ(buf.entries()[0].edit, 1u);
  EXPECT_EQ(buf.entries()[1].edit, 2u);
  ReplayBuffer none(0);
  none.Commit(std::nullopt, 0, 0);
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace moke
