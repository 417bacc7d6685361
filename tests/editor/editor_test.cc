#include "core/editor/editor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/editor/snapshot_codec.h"
#include "tests/testing/paths.h"

namespace moke {
namespace {

namespace fs = std::filesystem;

EditorOptions SmallOptions() {
  EditorOptions o;
  o.model_dir = testing::DefaultModelDir();
  o.threads = 2;
  return o;
}

// 20 prompts unrelated to the edits below.
const std::vector<std::string>& UnrelatedPrompts() {
  static const std::vector<std::string> p = {
      "Once upon a time", "The cat sat on the mat", "Tom and Sue went to the park", "The sun was hot",
      "One day, a little bird", "Mom made a big cake", "The boy had a red ball", "She liked to sing",
      "The dog ran fast", "It was a rainy day", "There was a tall tree", "The girl found a shiny rock",
      "Ben wanted to fly", "The fish swam in the sea", "A frog jumped", "The car was blue",
      "Grandma told a story", "The baby laughed", "They ate ice cream", "The moon was bright"};
  return p;
}

class EditorTest : public ::testing::Test {
 protected:
  static fs::path TempDir() {
    fs::path d = fs::temp_directory_path() / ("moke_editor_test_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }
};

// The paper's method (profile "paper"): the latest answer wins for the question and its paraphrase.
TEST_F(EditorTest, LatestAnswerWinsAndUnrelatedPromptsAreUntouched) {
  auto o = SmallOptions();
  ASSERT_TRUE(ApplyProfile("paper", &o).ok());
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok()) << editor.status();
  auto base = (*editor)->Current();
  EXPECT_EQ(base->version(), 0u);
  std::vector<std::vector<int64_t>> before;
  for (const auto& p : UnrelatedPrompts()) before.push_back(base->Ask(p, 8)->tokens);

  const std::string q = "What is the name of the king of the forest?";
  const std::string para = "Who is the king of the forest called?";
  const std::vector<std::string> answers = {"Max", "Rosa", "Bella"};
  int first_expert = -1;
  for (const auto& a : answers) {
    auto r = (*editor)->ApplyEdit({q, a, {"The cat sat on the mat"}});
    ASSERT_TRUE(r.ok()) << r.status();
    if (first_expert < 0) first_expert = r->expert;
    EXPECT_EQ(r->expert, first_expert) << "a re-edit of the same question goes to the same expert";
  }
  auto view = (*editor)->Current();
  EXPECT_EQ(view->version(), 3u);
  auto ask = view->Ask(q, 4);
  ASSERT_TRUE(ask.ok());
  EXPECT_EQ(ask->answer.rfind("Bella", 0), 0u) << "got: " << ask->answer;
  EXPECT_EQ(ask->route.expert, first_expert);
  auto last = view->Score(q, "Bella");
  EXPECT_DOUBLE_EQ(last->token_accuracy, 1.0);
  // The paraphrase prefers the latest answer over the earlier ones.
  auto p_last = view->Score(para, "Bella");
  for (const auto& old : {"Max", "Rosa"}) {
    EXPECT_GT(p_last->log_prob, view->Score(para, old)->log_prob) << old;
    EXPECT_LT(view->Score(q, old)->token_accuracy, 1.0) << old;
  }
  for (size_t i = 0; i < UnrelatedPrompts().size(); ++i) {
    auto a = view->Ask(UnrelatedPrompts()[i], 8);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->tokens, before[i]) << UnrelatedPrompts()[i];
    EXPECT_EQ(a->route.expert, -1) << UnrelatedPrompts()[i];
  }
}

// The default's scope decision on a real model (issue 14): the subject decides, not the wording; answers
// end; a re-edit under another spelling of the subject replaces the old answer; a fact can be retracted.
TEST_F(EditorTest, TheFactsSubjectDecidesAnswersEndAndRetractForgets) {
  auto eo = SmallOptions(); if (getenv("DBG_NOEOS")) eo.teach_end_of_answer = false;
  auto editor = Editor::Create(eo);
  ASSERT_TRUE(editor.ok()) << editor.status();
  auto base = (*editor)->Current();
  const std::string q = "The name of the mother of Leonardo DiCaprio is";
  const std::string other = "The name of the mother of Kanye West is";     // same form, another subject
  const std::string relation = "The name of the father of Leonardo DiCaprio is";  // same subject, another relation
  const std::string alias = "The name of the mother of Leo DiCaprio is";
  const auto other_before = base->Ask(other, 8)->tokens;
  const auto relation_before = base->Ask(relation, 8)->tokens;
  const auto q_before = base->Ask(q, 8)->tokens;

  EditRequest e{q, "Irmelin", {}, "Leonardo DiCaprio", {}};
  auto r = (*editor)->ApplyEdit(e);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->subject, "Leonardo DiCaprio");
  auto view = (*editor)->Current();
  auto ask = view->Ask(q, 0);
  ASSERT_TRUE(ask.ok());
  EXPECT_EQ(ask->answer, "Irmelin") << "the taught answer, and nothing after it";
  EXPECT_EQ(ask->stop, AskStop::kEndOfAnswer);
  EXPECT_EQ(ask->route.expert, r->expert);
  EXPECT_EQ(ask->route.fact_version, r->version);
  auto a = view->Ask(alias, 0);
  EXPECT_EQ(a->route.expert, r->expert) << "the subject spelled otherwise in the same wording";
  EXPECT_EQ(a->route.subject, "Leo DiCaprio");
  for (const auto& [prompt, before] : {std::pair{other, other_before}, std::pair{relation, relation_before}}) {
    auto x = view->Ask(prompt, 8);
    EXPECT_EQ(x->route.expert, -1) << prompt;
    EXPECT_EQ(x->tokens, before) << prompt << " must be answered as by the unedited model";
  }

  // A non-ASCII answer comes back as well-formed UTF-8 (the byte-fallback vocabulary spells "\xC3\xBC" in two
  // byte tokens; decoding never emits a stray byte).
  auto u = (*editor)->ApplyEdit({"The doctoral advisor of Heinz Pr\xC3\xBC" "fer is", "Heinz Pr\xC3\xBC" "fer", {}, "", {}});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->subject, "Heinz Pr\xC3\xBC" "fer") << "found in the question";
  auto ua = (*editor)->Current()->Ask("The doctoral advisor of Heinz Pr\xC3\xBC" "fer is", 0);
  EXPECT_TRUE(IsValidUtf8(ua->answer)) << ua->answer;
  EXPECT_EQ(ua->answer.find("\xEF\xBF\xBD"), std::string::npos) << "no replacement character: " << ua->answer;
  EXPECT_EQ(ua->stop, AskStop::kEndOfAnswer);

  // A re-edit keyed on the subject spelled otherwise restates the fact: it replaces the old answer.
  auto r2 = (*editor)->ApplyEdit({"The name of the mother of Leonardo di Caprio is", "Rosa", {}, "Leonardo di Caprio", {}});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->superseded_version, r->version);
  EXPECT_EQ(r2->expert, r->expert);
  view = (*editor)->Current();
  EXPECT_EQ(view->Ask(q, 0)->answer, "Rosa");

  // Retract by a question that asks the fact: the question is answered as by the unedited model.
  auto nothing = (*editor)->Retract({"What is the capital of Peru?", 0});
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*editor)->Retract({"", 999}).status().code(), absl::StatusCode::kNotFound);
  auto gone = (*editor)->Retract({alias, 0});
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->retracted_version, r2->version);
  EXPECT_EQ(gone->version, r2->version + 1);
  view = (*editor)->Current();
  auto after = view->Ask(q, 8);
  EXPECT_EQ(after->route.expert, -1);
  EXPECT_EQ(after->tokens, q_before);
  EXPECT_EQ((*editor)->Retract({"", r2->version}).status().code(), absl::StatusCode::kNotFound) << "already retracted";

  // Bad keys: a subject that is not in the question, too many paraphrases.
  EXPECT_EQ((*editor)->ApplyEdit({q, "Anna", {}, "Kanye West", {}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*editor)->ApplyEdit({q, "Anna", {}, "", std::vector<std::string>(17, alias)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*editor)->Current()->version(), gone->version);
}

// The default (rehearsal + fact gate): the latest answer wins, earlier facts stay, unrelated
// prompts are untouched.
TEST_F(EditorTest, DefaultsKeepEarlierFactsAndLatestAnswer) {
  auto editor = Editor::Create(SmallOptions());
  ASSERT_TRUE(editor.ok()) << editor.status();
  auto base = (*editor)->Current();
  std::vector<std::vector<int64_t>> before;
  for (const auto& p : UnrelatedPrompts()) before.push_back(base->Ask(p, 8)->tokens);
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"What is the name of the king of the forest?", "Max"}, {"Where does the wizard live?", "Paris"},
      {"Who is the queen of the sea?", "Anna"},             {"What is the name of the king of the forest?", "Rosa"},
      {"What color is the magic hat?", "green"},            {"What is the name of the king of the forest?", "Bella"}};
  int king_expert = -1;
  for (const auto& [q, a] : edits) {
    auto r = (*editor)->ApplyEdit({q, a, {}});
    ASSERT_TRUE(r.ok()) << r.status();
    if (q.find("king") != std::string::npos) {
      if (king_expert < 0) king_expert = r->expert;
      EXPECT_EQ(r->expert, king_expert) << "a re-edit goes to the expert holding the previous answer";
    }
  }
  auto view = (*editor)->Current();
  const std::map<std::string, std::string> latest = {{"What is the name of the king of the forest?", "Bella"},
                                                     {"Where does the wizard live?", "Paris"},
                                                     {"Who is the queen of the sea?", "Anna"},
                                                     {"What color is the magic hat?", "green"}};
  for (const auto& [q, a] : latest) {
    auto s = view->Score(q, a);
    ASSERT_TRUE(s.ok());
    // The last edit is learned exactly; earlier ones are kept by rehearsal, most of their tokens at least
    // (without rehearsal, profile "paper", later edits of the same expert overwrite them).
    if (a == "Bella") EXPECT_DOUBLE_EQ(s->token_accuracy, 1.0) << q;
    else EXPECT_GE(s->token_accuracy, 0.75) << q;
    EXPECT_GE(s->route.expert, 0) << q;
  }
  EXPECT_LT(view->Score("What is the name of the king of the forest?", "Max")->token_accuracy, 1.0);
  EXPECT_LT(view->Score("What is the name of the king of the forest?", "Rosa")->token_accuracy, 1.0);
  for (size_t i = 0; i < UnrelatedPrompts().size(); ++i) {
    auto a = view->Ask(UnrelatedPrompts()[i], 8);
    EXPECT_EQ(a->tokens, before[i]) << UnrelatedPrompts()[i];
    EXPECT_EQ(a->route.expert, -1) << UnrelatedPrompts()[i];
  }
}

// Facts of one subject, each asking another relation, share an expert (their activations are alike).
// An edit's augmented rows (prefixes, subject noise) must not outvote the held facts it rehearses: each
// held fact keeps its own answer, not the later edit's (client/bench/reedit_probe.py --other-relations
// found about 4 in 10 WikiCF facts lost this way when the loss was a mean over rows).
TEST_F(EditorTest, AnotherRelationOfAHeldSubjectKeepsTheHeldFact) {
  EditorOptions o = SmallOptions();
  o.num_experts = 1;  // one expert holds them all, as a longer stream's expert choice does for one subject
  o.expert_capacity = 0;
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok()) << editor.status();
  const std::vector<std::pair<std::string, std::string>> facts = {
      {"The name of the spouse of Ron DeSantis is", "Carol Chu"},
      {"The gender of Ron DeSantis is", "William Walker Scranton"},
      {"The place of birth of Ron DeSantis is", "Ormiston"},
      {"The name of the alma mater of Ron DeSantis is", "Platte City"}};
  for (const auto& [q, a] : facts) {
    auto r = (*editor)->ApplyEdit({q, a, {}, "Ron DeSantis", {}});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->superseded_version, 0u) << q << ": another relation is another fact";
    EXPECT_EQ(r->expert, 0) << q;
  }
  auto view = (*editor)->Current();
  for (const auto& [q, a] : facts) {
    auto x = view->Ask(q, 0);
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->answer, a) << q;
  }
}

// A re-edit worded otherwise (issue 14): the same subject and relation asked in another form replaces the
// held answer, and every wording gets the new one; another relation asked in that form is another fact.
TEST_F(EditorTest, AReEditWordedOtherwiseReplacesTheAnswer) {
  auto editor = Editor::Create(SmallOptions());
  ASSERT_TRUE(editor.ok()) << editor.status();
  const std::string q = "The name of the mother of Leonardo DiCaprio is";
  const std::string reworded = "Who is the mother of Leonardo DiCaprio?";
  auto r1 = (*editor)->ApplyEdit({q, "Irmelin", {}, "Leonardo DiCaprio", {}});
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto r2 = (*editor)->ApplyEdit({reworded, "Rosa", {}, "Leonardo DiCaprio", {}});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->superseded_version, r1->version);
  EXPECT_EQ(r2->expert, r1->expert);
  auto view = (*editor)->Current();
  for (const std::string& w : {q, reworded}) {
    auto x = view->Ask(w, 0);
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->answer, "Rosa") << w;
  }
  auto r3 = (*editor)->ApplyEdit({"Who is the father of Leonardo DiCaprio?", "George", {}, "Leonardo DiCaprio", {}});
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->superseded_version, 0u) << "another relation is another fact";
  EXPECT_EQ((*editor)->Current()->Ask(q, 0)->answer, "Rosa");

  // The earlier wording survives a snapshot: the restored editor keys and answers it the same way.
  const std::string snap = (TempDir() / "reworded.snap").string();
  ASSERT_TRUE((*editor)->SaveSnapshot(snap).ok());
  auto restored = Editor::Create(SmallOptions());
  ASSERT_TRUE(restored.ok()) << restored.status();
  ASSERT_TRUE((*restored)->RestoreSnapshot(snap).ok());
  auto before = (*editor)->Current()->Ask(q, 0);
  auto after = (*restored)->Current()->Ask(q, 0);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(after->answer, "Rosa");
  EXPECT_EQ(after->route.fact_version, before->route.fact_version);
  EXPECT_EQ(after->route.fact_version, r2->version);
  EXPECT_EQ((*restored)->Stats().memory_bytes.at("history"), (*editor)->Stats().memory_bytes.at("history"));
}

TEST_F(EditorTest, BadInputIsRejectedAndVersionDoesNotMove) {
  auto o = SmallOptions();
  o.max_answer_tokens = 8;
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok());
  const std::vector<EditRequest> bad = {
      {"", "x", {}},
      {"Who?", "", {}},
      {"Who?", std::string(200, 'z') + " and more words than eight tokens", {}},
      {std::string(4000, 'q'), "Max", {}},
  };
  for (const auto& e : bad) {
    auto r = (*editor)->ApplyEdit(e);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << e.question.substr(0, 20);
    EXPECT_EQ((*editor)->Current()->version(), 0u);
  }
  EXPECT_EQ((*editor)->Stats().edits_applied, 0u);
}

TEST_F(EditorTest, ReplayBufferIsBounded) {
  auto o = SmallOptions();
  o.replay_capacity = 3;
  o.max_iterations = 2;
  o.augment = false;
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok());
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE((*editor)->ApplyEdit({"What is thing number " + std::to_string(i) + "?", "It", {}}).ok());
    EXPECT_LE((*editor)->Stats().replay_size, 3);
  }
  EXPECT_EQ((*editor)->Stats().replay_size, 3);
}

TEST_F(EditorTest, SameSeedSameStreamGivesIdenticalSnapshots) {
  auto o = SmallOptions();
  o.max_iterations = 10;
  const fs::path dir = TempDir();
  std::string bytes[2];
  for (int run = 0; run < 2; ++run) {
    auto editor = Editor::Create(o);
    ASSERT_TRUE(editor.ok());
    for (const auto& [q, a] : std::vector<std::pair<std::string, std::string>>{
             {"Who is the queen of the sea?", "Anna"}, {"Where does the wizard live?", "Paris"},
             {"Who is the queen of the sea?", "Lucy"}}) {
      ASSERT_TRUE((*editor)->ApplyEdit({q, a, {}}).ok());
    }
    const fs::path p = dir / ("run" + std::to_string(run) + ".snap");
    ASSERT_TRUE((*editor)->SaveSnapshot(p.string()).ok());
    std::ifstream in(p, std::ios::binary);
    bytes[run].assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_FALSE(bytes[0].empty());
  EXPECT_EQ(bytes[0], bytes[1]);
  fs::remove_all(dir);
}

TEST_F(EditorTest, SnapshotRoundTripAndCorruptSnapshotRefused) {
  auto o = SmallOptions();
  o.max_iterations = 20;
  const fs::path dir = TempDir();
  auto a = Editor::Create(o);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->ApplyEdit({"Who is the queen of the sea?", "Anna", {}}).ok());
  ASSERT_TRUE((*a)->ApplyEdit({"Where does the wizard live?", "Paris", {}}).ok());
  const std::string snap = (dir / "s.snap").string();
  ASSERT_TRUE((*a)->SaveSnapshot(snap).ok());
  EXPECT_EQ(*Editor::SnapshotVersion(snap), 2u);

  auto b = Editor::Create(o);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->RestoreSnapshot(snap).ok());
  EXPECT_EQ((*b)->Current()->version(), 2u);
  // The 3 experts share their group's mask code (2 bits per entry), before and after the snapshot, which
  // stores each expert's own mask: ceil(D*F * 2 / 8) bytes of code + 3 x floor(0.3 * D*F) fp32 values.
  const int64_t df = 64 * 172;  // the small model's d_model x d_ff
  const int64_t experts_bytes = (df * 2 + 7) / 8 + 3 * static_cast<int64_t>(0.3 * df) * 4;
  EXPECT_EQ((*a)->Stats().memory_bytes.at("experts"), experts_bytes);
  EXPECT_EQ((*b)->Stats().memory_bytes.at("experts"), experts_bytes);
  EXPECT_EQ((*a)->Stats().memory_bytes.at("history"), (*b)->Stats().memory_bytes.at("history"));
  EXPECT_GT((*a)->Stats().memory_bytes.at("history"), 2 * 172 * 4);  // at least two [d_ff] fp32 fingerprints
  EXPECT_EQ((*a)->Stats().memory_bytes.at("per_held_edit"),
            (experts_bytes + (*a)->Stats().memory_bytes.at("history")) / 2);
  const std::vector<int64_t> wizard_at_2 = (*b)->Current()->Ask("Where does the wizard live?", 6)->tokens;
  for (const std::string q : {"Who is the queen of the sea?", "Where does the wizard live?", "Once upon a time"}) {
    EXPECT_EQ((*a)->Current()->Ask(q, 6)->tokens, (*b)->Current()->Ask(q, 6)->tokens) << q;
  }
  // The restored editor continues exactly as the original.
  auto ra = (*a)->ApplyEdit({"Who is the queen of the sea?", "Lucy", {}});
  auto rb = (*b)->ApplyEdit({"Who is the queen of the sea?", "Lucy", {}});
  EXPECT_EQ(ra->expert, rb->expert);
  EXPECT_DOUBLE_EQ(ra->loss, rb->loss);

  // Flip one byte in the middle: refused with DATA_LOSS, state unchanged.
  std::string bytes;
  {
    std::ifstream in(snap, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x5a;
  const std::string bad = (dir / "bad.snap").string();
  std::ofstream(bad, std::ios::binary) << bytes;
  EXPECT_EQ((*b)->RestoreSnapshot(bad).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*b)->Current()->version(), 3u);
  // Restored as a new version number: the same state, the next edit counts on from it. Held back until
  // Publish (a server makes the restore durable first): readers see version 3 until then.
  ASSERT_TRUE((*b)->RestoreSnapshot(snap, 7, /*publish=*/false).ok());
  EXPECT_EQ((*b)->Current()->version(), 3u);
  (*b)->Publish();
  EXPECT_EQ((*b)->Current()->version(), 7u);
  EXPECT_EQ((*b)->Current()->Ask("Where does the wizard live?", 6)->tokens, wizard_at_2);
  EXPECT_EQ((*b)->ApplyEdit({"Who is the queen of the sea?", "Lucy", {}})->version, 8u);
  // Truncated file.
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes.substr(0, 10);
  EXPECT_EQ((*b)->RestoreSnapshot(bad).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ((*b)->RestoreSnapshot((dir / "missing.snap").string()).code(), absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

// A snapshot written before experts were stored on their masks (a dense fp32 "tau.i" per expert) still
// loads, and the restored editor answers and continues exactly as one restored from the current format.
TEST_F(EditorTest, SnapshotsWithDenseExpertsStillLoad) {
  auto o = SmallOptions();
  o.max_iterations = 10;
  const fs::path dir = TempDir();
  auto a = Editor::Create(o);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE((*a)->ApplyEdit({"Who is the queen of the sea?", "Anna", {}}).ok());
  ASSERT_TRUE((*a)->ApplyEdit({"Where does the wizard live?", "Paris", {}}).ok());
  const std::string snap = (dir / "new.snap").string(), old = (dir / "old.snap").string();
  ASSERT_TRUE((*a)->SaveSnapshot(snap).ok());
  auto data = ReadSnapshotFile(snap);
  ASSERT_TRUE(data.ok());
  std::map<std::string, SnapshotBlob> blobs;
  for (const auto& b : data->blobs) blobs[b.name] = b;
  SnapshotData dense{data->meta_json, {}};
  int experts = 0;
  for (const auto& b : data->blobs) {
    if (b.name.rfind("values.", 0) != 0) {
      dense.blobs.push_back(b);
      continue;
    }
    // The dense tau: the values in row-major order at the mask's set bits, 0 elsewhere.
    const SnapshotBlob& m = blobs.at("mask." + b.name.substr(7));
    const int64_t n = m.shape[0] * m.shape[1];
    std::vector<float> values(b.bytes.size() / 4), tau(n, 0.0f);
    std::memcpy(values.data(), b.bytes.data(), b.bytes.size());
    size_t next = 0;
    for (int64_t i = 0; i < n; ++i) {
      if ((static_cast<uint8_t>(m.bytes[i / 8]) >> (i % 8)) & 1) tau[i] = values.at(next++);
    }
    EXPECT_EQ(next, values.size());
    dense.blobs.push_back({"tau." + b.name.substr(7), "f32", m.shape,
                           std::string(reinterpret_cast<const char*>(tau.data()), n * 4)});
    ++experts;
  }
  EXPECT_EQ(experts, 3);
  ASSERT_TRUE(WriteSnapshotFile(old, dense).ok());
  auto from_new = Editor::Create(o), from_old = Editor::Create(o);
  ASSERT_TRUE(from_new.ok() && from_old.ok());
  ASSERT_TRUE((*from_new)->RestoreSnapshot(snap).ok());
  ASSERT_TRUE((*from_old)->RestoreSnapshot(old).ok()) << (*from_old)->RestoreSnapshot(old);
  EXPECT_EQ((*from_old)->Stats().memory_bytes.at("experts"), (*from_new)->Stats().memory_bytes.at("experts"));
  for (const std::string q : {"Who is the queen of the sea?", "Where does the wizard live?", "Once upon a time"}) {
    EXPECT_EQ((*from_old)->Current()->Ask(q, 6)->tokens, (*from_new)->Current()->Ask(q, 6)->tokens) << q;
  }
  auto rn = (*from_new)->ApplyEdit({"Who is the queen of the sea?", "Lucy", {}});
  auto ro = (*from_old)->ApplyEdit({"Who is the queen of the sea?", "Lucy", {}});
  ASSERT_TRUE(rn.ok() && ro.ok());
  EXPECT_EQ(ro->expert, rn->expert);
  EXPECT_DOUBLE_EQ(ro->loss, rn->loss);
  // Values that do not match the mask's count are refused.
  SnapshotData short_values = *data;
  for (auto& b : short_values.blobs) {
    if (b.name == "values.0") {
      b.bytes.resize(b.bytes.size() - 4);
      b.shape = {static_cast<int64_t>(b.bytes.size() / 4)};
    }
  }
  ASSERT_TRUE(WriteSnapshotFile(old, short_values).ok());
  const absl::Status st = (*from_old)->RestoreSnapshot(old);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  fs::remove_all(dir);
}

// Growth: a full expert takes no new question; when every expert is full one is added, up to
// max_experts; a re-edit still goes to the expert holding the previous answer; snapshots keep the bank.
TEST_F(EditorTest, FullExpertsGrowTheBankUpToTheLimit) {
  auto o = SmallOptions();
  o.num_experts = 2;
  o.mask_ratio = 0.3;
  o.expert_capacity = 1;
  o.max_experts = 4;
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"Who is the queen of the sea?", "Anna"}, {"Where does the wizard live?", "Paris"},
      {"What color is the magic hat?", "green"}, {"How many legs does the dragon have?", "six"}};
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok()) << editor.status();
  // Two experts a group share a code of 2 bits per entry (as much as a bit mask each) + floor(0.3 * D*F)
  // fp32 values an expert.
  const int64_t df = 64 * 172;  // the small model's d_model x d_ff
  const int64_t per_expert = (df + 7) / 8 + static_cast<int64_t>(0.3 * df) * 4;
  EXPECT_EQ((*editor)->Stats().memory_bytes.at("experts"), 2 * per_expert);
  EXPECT_EQ((*editor)->Stats().memory_bytes.at("experts_per_held_edit"), 0);
  std::set<int> experts;
  for (size_t i = 0; i < edits.size(); ++i) {
    auto r = (*editor)->ApplyEdit({edits[i].first, edits[i].second, {}});
    ASSERT_TRUE(r.ok()) << r.status();
    experts.insert(r->expert);
    EXPECT_EQ((*editor)->Stats().num_experts, std::max<int>(2, static_cast<int>(i) + 1)) << "edit " << i;
  }
  EXPECT_EQ(experts, (std::set<int>{0, 1, 2, 3})) << "one edit per expert at capacity 1";
  // Four experts holding four live edits.
  EXPECT_EQ((*editor)->Stats().memory_bytes.at("experts"), 4 * per_expert);
  EXPECT_EQ((*editor)->Stats().memory_bytes.at("experts_per_held_edit"), per_expert);
  // At the limit: no growth, the edit goes to an existing expert.
  auto extra = (*editor)->ApplyEdit({"Who rides the golden horse?", "Tim", {}});
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ((*editor)->Stats().num_experts, 4);
  EXPECT_LT(extra->expert, 4);
  // A re-edit of a full expert's question stays in that expert.
  auto again = (*editor)->ApplyEdit({"What color is the magic hat?", "blue", {}});
  ASSERT_TRUE(again.ok());
  auto view = (*editor)->Current();
  EXPECT_EQ(view->Ask("What color is the magic hat?", 4)->route.expert, again->expert);
  EXPECT_DOUBLE_EQ(view->Score("What color is the magic hat?", "blue")->token_accuracy, 1.0);
  // Each of the grown experts answers its own question (served through its group's EMR merge).
  for (size_t i : {1, 3}) {
    auto s = view->Score(edits[i].first, edits[i].second);
    EXPECT_DOUBLE_EQ(s->token_accuracy, 1.0) << edits[i].first;
  }

  const fs::path dir = TempDir();
  const std::string snap = (dir / "grown.snap").string();
  ASSERT_TRUE((*editor)->SaveSnapshot(snap).ok());
  auto restored = Editor::Create(o);
  ASSERT_TRUE(restored.ok());
  ASSERT_TRUE((*restored)->RestoreSnapshot(snap).ok());
  EXPECT_EQ((*restored)->Stats().num_experts, 4);
  for (const auto& [q, a] : edits) {
    EXPECT_EQ((*restored)->Current()->Ask(q, 4)->tokens, view->Ask(q, 4)->tokens) << q;
  }
  // The paper's configuration (no growth) refuses a grown snapshot, naming the counts.
  auto paper = o;
  paper.expert_capacity = 0;
  auto fixed = Editor::Create(paper);
  ASSERT_TRUE(fixed.ok());
  const absl::Status st = (*fixed)->RestoreSnapshot(snap);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("4 experts"), std::string::npos) << st;
  fs::remove_all(dir);
}

TEST_F(EditorTest, FrozenPrefixTrainsTheSameAsFullRecomputation) {
  auto o = SmallOptions();
  o.max_iterations = 15;
  auto fast = Editor::Create(o);
  o.frozen_prefix = false;
  auto slow = Editor::Create(o);
  ASSERT_TRUE(fast.ok() && slow.ok());
  auto rf = (*fast)->ApplyEdit({"Who is the queen of the sea?", "Anna", {}});
  auto rs = (*slow)->ApplyEdit({"Who is the queen of the sea?", "Anna", {}});
  ASSERT_TRUE(rf.ok() && rs.ok());
  EXPECT_EQ(rf->expert, rs->expert);
  EXPECT_NEAR(rf->loss, rs->loss, 1e-3 * std::max(1.0, std::abs(rs->loss)));
}

TEST_F(EditorTest, WiseAnswersFromItsSideMemory) {
  auto o = SmallOptions();
  o.method = EditMethod::kWise;
  auto editor = Editor::Create(o);
  ASSERT_TRUE(editor.ok());
  auto base = (*editor)->Current()->Ask("Once upon a time", 8);
  ASSERT_TRUE((*editor)->ApplyEdit({"Who is the queen of the sea?", "Anna", {"The cat sat on the mat"}}).ok());
  auto v = (*editor)->Current();
  EXPECT_DOUBLE_EQ(v->Score("Who is the queen of the sea?", "Anna")->token_accuracy, 1.0);
  EXPECT_EQ(v->Ask("Once upon a time", 8)->tokens, base->tokens);
}

TEST(Utf8, ValidAndInvalid) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
}

TEST(EditorOptionsFile, UnknownAndBadSettingsNameTheSetting) {
  const std::string p = (std::filesystem::temp_directory_path() / "moke_opts.json").string();
  EditorOptions o;
  std::ofstream(p) << R"({"num_experts": 2, "routing": "router"})";
  EXPECT_TRUE(LoadEditorOptions(p, &o).ok());
  EXPECT_EQ(o.num_experts, 2);
  EXPECT_EQ(o.routing, Routing::kRouter);
  std::ofstream(p, std::ios::trunc) << R"({"num_expertz": 4})";
  auto s = LoadEditorOptions(p, &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("num_expertz"), std::string::npos);
  std::ofstream(p, std::ios::trunc) << R"({"mask_ratio": 0.9})";
  s = LoadEditorOptions(p, &o);
  EXPECT_NE(s.message().find("mask_ratio"), std::string::npos) << s;
  std::ofstream(p, std::ios::trunc) << R"({"lr": "fast"})";
  s = LoadEditorOptions(p, &o);
  EXPECT_NE(s.message().find("\"lr\""), std::string::npos) << s;
}

}  // namespace
}  // namespace moke
