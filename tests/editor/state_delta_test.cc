// State deltas (core/editor/state_delta.h): a follower that applies the editor's deltas holds the editor's
// state exactly (the same tensors, keys and routing) at every version, through edits, a retract and a
// restore; corrupt or mismatched bytes are refused, never a crash.
#include "core/editor/state_delta.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "core/editor/knowledge_state.h"
#include "core/editor/state_delta_codec.h"
#include "tests/testing/paths.h"

namespace moke {
namespace {

EditorOptions SmallOptions() {
  EditorOptions o;
  o.model_dir = testing::DefaultModelDir();
  o.threads = 2;
  return o;
}

const std::vector<std::string>& Questions() {
  static const std::vector<std::string> q = {
      "What is the name of the king of the forest?", "Who is the king of the forest called?",
      "Which city is the capital of Mars?",          "What color is the dragon's hat?",
      "Once upon a time",                            "The dog ran fast"};
  return q;
}

void ExpectSameTensor(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << what;
  EXPECT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(at::equal(a.cpu(), b.cpu())) << what;
}

// Everything a published state answers from is the same, and so are the answers.
void ExpectSameState(const KnowledgeView& editor, const KnowledgeView& follower) {
  const KnowledgeState::Parts& a = editor.state().parts();
  const KnowledgeState::Parts& b = follower.state().parts();
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.layer, b.layer);
  ASSERT_EQ(a.experts.taus.size(), b.experts.taus.size());
  for (size_t k = 0; k < a.experts.taus.size(); ++k) {
    ExpectSameTensor(a.experts.taus[k].bits(), b.experts.taus[k].bits(), "bits " + std::to_string(k));
    ExpectSameTensor(a.experts.taus[k].values(), b.experts.taus[k].values(), "values " + std::to_string(k));
    // Stored alike: the same code width and slot, and, as on the editor, one code for a group's experts.
    EXPECT_EQ(a.experts.taus[k].code().bits(), b.experts.taus[k].code().bits()) << "code of expert " << k;
    EXPECT_EQ(a.experts.taus[k].slot(), b.experts.taus[k].slot()) << "slot of expert " << k;
    if (k > 0 && a.experts.taus[k].code().SameStorage(a.experts.taus[k - 1].code())) {
      EXPECT_TRUE(b.experts.taus[k].code().SameStorage(b.experts.taus[k - 1].code())) << "experts " << k - 1 << ", " << k;
    }
  }
  EXPECT_EQ(a.thresholds, b.thresholds);
  ExpectSameTensor(a.router_w, b.router_w, "router_w");
  ExpectSameTensor(a.router_b, b.router_b, "router_b");
  EXPECT_EQ(a.fact_version, b.fact_version);
  EXPECT_EQ(a.fact_expert, b.fact_expert);
  EXPECT_EQ(a.fact_answer_tokens, b.fact_answer_tokens);
  ASSERT_EQ(a.facts.size(), b.facts.size());
  for (size_t i = 0; i < a.facts.size(); ++i) {
    const FactKey& x = *a.facts[i];
    const FactKey& y = *b.facts[i];
    EXPECT_EQ(x.question, y.question);
    EXPECT_EQ(x.subject, y.subject);
    EXPECT_EQ(x.names, y.names);
    EXPECT_EQ(x.name_trigrams, y.name_trigrams);
    EXPECT_EQ(x.question_trigrams, y.question_trigrams);
    ASSERT_EQ(x.relations.size(), y.relations.size());
    for (size_t r = 0; r < x.relations.size(); ++r) {
      EXPECT_EQ(x.relations[r].words, y.relations[r].words);
      ExpectSameTensor(x.relations[r].key, y.relations[r].key, "relation key");
    }
  }
  EXPECT_EQ(a.options.routing, b.options.routing);
  EXPECT_EQ(a.options.scope_subject_min, b.options.scope_subject_min);
  for (const std::string& q : Questions()) {
    auto x = editor.Ask(q, 12);
    auto y = follower.Ask(q, 12);
    ASSERT_TRUE(x.ok() && y.ok()) << q;
    EXPECT_EQ(x->tokens, y->tokens) << q;
    EXPECT_EQ(x->answer, y->answer) << q;
    EXPECT_EQ(x->route.expert, y->route.expert) << q;
    EXPECT_EQ(x->route.fact_version, y->route.fact_version) << q;
    EXPECT_EQ(x->version, y->version) << q;
  }
}

class StateDeltaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto e = Editor::Create(SmallOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    editor_ = e->release();
    auto f = Editor::Create(SmallOptions());  // the follower's model and unedited state
    ASSERT_TRUE(f.ok()) << f.status();
    follower_base_ = f->release();
  }
  static void TearDownTestSuite() {
    delete editor_;
    delete follower_base_;
  }
  static void Edit(const std::string& q, const std::string& a) {
    auto r = editor_->ApplyEdit({q, a, {}, "", {}});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  // Applies Diff(from, to) to `held` and checks the result against `to`.
  static std::shared_ptr<const KnowledgeView> Follow(const KnowledgeView* from, const KnowledgeView& to,
                                                     const KnowledgeView& held, size_t* bytes = nullptr) {
    auto d = DiffStates(from, to);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return nullptr;
    if (bytes) *bytes = d->size();
    auto next = ApplyStateDelta(held, *d);
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok()) return nullptr;
    ExpectSameState(to, **next);
    return *next;
  }
  static Editor* editor_;
  static Editor* follower_base_;
};
Editor* StateDeltaTest::editor_ = nullptr;
Editor* StateDeltaTest::follower_base_ = nullptr;

TEST_F(StateDeltaTest, FollowsEditsRetractsAndRestoresExactly) {
  const auto base = follower_base_->Current();
  // Version 0 in full.
  auto held = Follow(nullptr, *editor_->Current(), *base);
  ASSERT_TRUE(held);

  Edit("What is the name of the king of the forest?", "Max");
  auto v1 = editor_->Current();
  size_t full_bytes = 0, step_bytes = 0;
  held = Follow(nullptr, *v1, *base, &full_bytes);  // a follower that starts now
  ASSERT_TRUE(held);
  Edit("Which city is the capital of Mars?", "Olympus");
  auto v2 = editor_->Current();
  held = Follow(v1.get(), *v2, *held, &step_bytes);  // one step
  ASSERT_TRUE(held);
  EXPECT_LT(step_bytes, full_bytes) << "a step sends only what changed";
  std::cout << "state delta: full " << full_bytes << " bytes at version 1, one edit " << step_bytes << " bytes\n";
  EXPECT_EQ(held->Ask("Which city is the capital of Mars?", 12)->answer,
            editor_->Current()->Ask("Which city is the capital of Mars?", 12)->answer);

  // A snapshot, one more edit, a retract (coalesced: one delta over two versions), then a restore.
  const std::string snap = (std::filesystem::temp_directory_path() /
                            ("moke_state_delta_test_" + std::to_string(::getpid()) + ".bin")).string();
  ASSERT_TRUE(editor_->SaveSnapshot(snap).ok());
  Edit("What color is the dragon's hat?", "green");
  ASSERT_TRUE(editor_->Retract({"Which city is the capital of Mars?", 0}).ok());
  auto v4 = editor_->Current();
  ASSERT_EQ(v4->version(), 4u);
  held = Follow(v2.get(), *v4, *held);
  ASSERT_TRUE(held);
  ASSERT_TRUE(editor_->RestoreSnapshot(snap, 5).ok());
  auto v5 = editor_->Current();
  held = Follow(v4.get(), *v5, *held);
  ASSERT_TRUE(held);
  std::filesystem::remove(snap);

  // A delta applies only to the version it starts from.
  auto stale = DiffStates(v1.get(), *v2);
  ASSERT_TRUE(stale.ok());
  auto refused = ApplyStateDelta(*held, *stale);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
}

TEST_F(StateDeltaTest, CorruptBytesAreRefusedNeverACrash) {
  auto full = DiffStates(nullptr, *editor_->Current());
  ASSERT_TRUE(full.ok());
  const auto base = follower_base_->Current();
  // Every truncation (in steps), and byte flips anywhere: the checksum or the bounds checks refuse them.
  const size_t step = std::max<size_t>(1, full->size() / 200);
  for (size_t n = 0; n < full->size(); n += step) {
    auto r = ApplyStateDelta(*base, std::string_view(*full).substr(0, n));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << n;
  }
  for (size_t at = 0; at < full->size(); at += step) {
    std::string bad = *full;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    EXPECT_FALSE(ApplyStateDelta(*base, bad).ok()) << at;
  }
  // Re-encoded with inconsistent content (a valid checksum): refused by the checks against the model.
  auto d = DecodeStateDelta(*full);
  ASSERT_TRUE(d.ok()) << d.status();
  StateDelta wrong = *d;
  wrong.num_experts += 1;  // an expert that is never sent
  EXPECT_EQ(ApplyStateDelta(*base, EncodeStateDelta(wrong)).status().code(), absl::StatusCode::kDataLoss);
  wrong = *d;
  wrong.experts[0].values.bytes.resize(wrong.experts[0].values.bytes.size() - WireDtypeSize(wrong.experts[0].values.dtype));
  wrong.experts[0].values.shape[0] -= 1;  // one value short of the mask
  EXPECT_EQ(ApplyStateDelta(*base, EncodeStateDelta(wrong)).status().code(), absl::StatusCode::kDataLoss);
  wrong = *d;
  wrong.thresholds.pop_back();
  EXPECT_EQ(ApplyStateDelta(*base, EncodeStateDelta(wrong)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(EncodeStateDelta(*d), *full) << "decode and encode are inverse";
}

TEST_F(StateDeltaTest, AnotherModelIsRefused) {
  auto full = DiffStates(nullptr, *editor_->Current());
  ASSERT_TRUE(full.ok());
  auto d = DecodeStateDelta(*full);
  ASSERT_TRUE(d.ok());
  d->model.w_org_crc ^= 1;  // other weights at the edit layer
  auto r = ApplyStateDelta(*follower_base_->Current(), EncodeStateDelta(*d));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("another model"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace moke
