// The editor: one edit at a time, in four steps that each live in their own file —
//   plan     (this file): the question's activations, the training rows (augmentation.h), x_o
//            (unrelated_pool.h), the expert (expert_choice.h), what to rehearse and replay (rehearsal.h);
//   train    (trainer.h): the chosen expert's tau;
//   commit   (this file): the bank, the history, the replay buffer, the router; a new version;
//   publish  (this file): an immutable KnowledgeState for readers (knowledge_state.h).
// Snapshots of the state are editor_snapshot.h.
#include "core/editor/editor.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/common/process_tuning.h"
#include "core/common/serial_check.h"
#include "core/common/status_macros.h"
#include "core/editor/activations.h"
#include "core/editor/editor_snapshot.h"
#include "core/editor/editor_state.h"
#include "core/editor/expert_choice.h"
#include "core/editor/fact_key.h"
#include "core/editor/knowledge_state.h"
#include "core/editor/trainer.h"
#include "core/experts/expert_math.h"

namespace moke {

namespace {

// x_o sampled from the pool when an edit supplies no unrelated prompt.
constexpr size_t kSampledUnrelated = 8;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

class Editor::Impl {
 public:
  EditorState s;
  SerialCheck serial;  // "the editor thread": public methods that read or change `s` do not overlap
  mutable absl::Mutex mu;
  std::shared_ptr<const KnowledgeView> current ABSL_GUARDED_BY(mu);

  absl::Status Init();
  absl::StatusOr<EditResult> Apply(const EditRequest& edit, bool publish, const Budget& budget);
  void Publish();

 private:
  // Everything an edit needs decided before training; nothing in `s` changes while planning (but the
  // generator, which Apply restores on failure).
  struct EditPlan {
    PromptActivations question;
    at::Tensor fingerprint;  // [F]
    std::shared_ptr<const FactKey> key;
    ExpertChoice choice;
    std::vector<size_t> superseded;  // held edits of the same fact: replaced at commit
    std::vector<std::string> earlier_wordings;  // their questions in other words (HeldEdit::earlier_wordings)
    std::optional<size_t> replay_slot;
    TrainingProblem training;
    std::vector<UnrelatedPool::Entry> supplied;  // the edit's own x_o: added to the pool at commit
  };
  EditPlan Plan(const EditRequest& edit);
  // The tokens an edit teaches: the answer's, then the end of sequence (teach_end_of_answer).
  std::vector<int64_t> AnswerTokens(const std::string& answer) const;
  void Commit(const EditRequest& edit, EditPlan& plan, TrainedExpert& trained);
};

absl::Status Editor::Impl::Init() {
  const EditorOptions& opt = s.options;
  MOKE_RETURN_IF_ERROR(ValidateEditorOptions(opt));
  LoadOptions lo;
  lo.dir = opt.model_dir;
  lo.device = opt.device;
  lo.dtype = opt.dtype;
  MOKE_ASSIGN_OR_RETURN(auto m, LlamaModel::Load(lo));
  s.model = std::move(m);
  const ModelConfig& c = s.model->config();
  at::set_num_threads(ConfigureComputeThreads(opt.threads, c.NumParameters()));
  s.layer = opt.edit_layer >= 0
                ? opt.edit_layer
                : std::max<int64_t>(0, static_cast<int64_t>(std::llround(0.8 * c.num_hidden_layers)) - 1);
  if (s.layer >= c.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting \"edit_layer\" is ", s.layer, " but the model has ", c.num_hidden_layers, " layers"));
  }
  return GuardTorch("editor init", [&] {
    at::NoGradGuard no_grad;
    s.rng.seed(opt.seed);
    s.bank = ExpertBank::Create(opt, s.model->down_weight(s.layer).to(at::kFloat).clone(), s.model->dtype());
    if (opt.method == EditMethod::kMoke) s.router = Router(opt.num_experts, s.bank.w_org().size(1), s.bank.w_org().device());
    s.replay = ReplayBuffer(opt.replay_capacity);
    s.augmenter = Augmenter::Create(s.model, opt.num_prefixes);
    s.pool = UnrelatedPool::Create(s.model, s.layer);
    Publish();
    return absl::OkStatus();
  });
}

std::vector<int64_t> Editor::Impl::AnswerTokens(const std::string& answer) const {
  std::vector<int64_t> ids = s.model->EncodeContinuation(answer);
  if (s.options.teach_end_of_answer) ids.push_back(s.model->config().eos_token_id);
  return ids;
}

Editor::Impl::EditPlan Editor::Impl::Plan(const EditRequest& edit) {
  const EditorOptions& opt = s.options;
  const LlamaModel& model = *s.model;
  EditPlan plan;
  TrainingProblem& t = plan.training;
  t.rows = s.augmenter.Rows(edit.question, AnswerTokens(edit.answer), opt.augment, s.rng);
  plan.question = ActivationsOf(model, s.layer, edit.question);
  plan.fingerprint = Fingerprint(plan.question.a);
  plan.key = BuildFactKey(model, s.layer, {edit.question, edit.subject, edit.paraphrases}, plan.question.a, ScopeThresholdsOf(opt));

  // x_o: the prompts supplied with this edit, else a seeded sample of the pool.
  std::vector<at::Tensor> xo;
  for (const auto& text : edit.unrelated) {
    if (text.empty()) continue;
    plan.supplied.push_back(s.pool.Get(text));
    xo.push_back(plan.supplied.back().a);
  }
  if (xo.empty()) xo = s.pool.Sample(kSampledUnrelated, s.rng);
  t.unrelated = PadActivations(xo);

  // The held edits this one replaces (its re-edits): superseded at commit, never rehearsed.
  plan.superseded = ReplacedEdits(opt, s.history, edit.question, *plan.key);
  plan.earlier_wordings = EarlierWordings(s.history, plan.superseded, edit.question);
  if (!plan.earlier_wordings.empty()) {
    // A re-edit worded otherwise: the old wordings ask this fact too, so they are taught the new answer
    // (as the edit's own rows) and key the fact with the new question.
    for (const std::string& w : plan.earlier_wordings) {
      auto rows = s.augmenter.Rows(w, AnswerTokens(edit.answer), false, s.rng);
      t.rows.insert(t.rows.end(), rows.begin(), rows.end());
    }
    HeldEdit as_held{.question = edit.question, .subject = edit.subject, .paraphrases = edit.paraphrases,
                     .earlier_wordings = plan.earlier_wordings};
    plan.key = BuildFactKey(model, s.layer, FactSourceOf(as_held), plan.question.a, ScopeThresholdsOf(opt));
  }
  const LiveAfter live(s.history, plan.superseded);
  plan.choice = ChooseExpert(opt, s.bank, s.history, live, EditKeys{plan.question.a, t.unrelated}, s.rng);
  const int expert = plan.choice.expert;
  t.edit_rows = t.rows.size();
  for (size_t h : PlanRehearsal(s.history, expert, live, opt.retention, s.rng)) {
    const HeldEdit& held = s.history[h];
    auto rows = s.augmenter.Rows(RehearsedWording(held, s.rng), AnswerTokens(held.answer), false, s.rng);
    t.rows.insert(t.rows.end(), rows.begin(), rows.end());
  }
  if (opt.method == EditMethod::kMoke && opt.memory_loss && !s.replay.empty()) {
    plan.replay_slot = s.replay.Pick(expert, live, s.rng);
  }

  t.model = &model;
  t.layer = s.layer;
  t.options = &s.options;
  t.w_org = s.bank.w_org();
  t.tau = plan.choice.grow ? at::zeros_like(s.bank.w_org()) : s.bank.tau(expert);
  t.mask = s.bank.MaskOf(expert);
  if (plan.replay_slot) {
    const ReplayBuffer::Entry& r = s.replay.entries()[*plan.replay_slot];
    t.replay = ReplayedEdit{r.a, s.bank.tau(s.history[r.edit].expert)};
  }
  return plan;
}

void Editor::Impl::Commit(const EditRequest& edit, EditPlan& plan, TrainedExpert& trained) {
  const EditorOptions& opt = s.options;
  at::NoGradGuard ng;
  const int expert = plan.choice.expert;
  const double d_now =
      DeltaScores(plan.question.a, trained.tau.unsqueeze(0), PromptTokenMask(plan.question.a)).item<double>();
  for (auto& entry : plan.supplied) s.pool.AddSupplied(std::move(entry));
  for (size_t h : plan.superseded) s.history[h].superseded = true;
  if (plan.choice.grow) s.router.AddExpert();
  s.bank.Store(expert, trained.tau, d_now);
  ++s.version;
  HeldEdit held;
  held.question = edit.question;
  held.answer = edit.answer;
  held.answer_tokens = static_cast<int64_t>(s.model->EncodeContinuation(edit.answer).size());
  held.subject = edit.subject;
  held.paraphrases = edit.paraphrases;
  held.earlier_wordings = std::move(plan.earlier_wordings);
  held.key = plan.key;
  held.expert = expert;
  held.version = s.version;
  held.fingerprint = plan.fingerprint;
  held.delta_trained = d_now;
  s.history.push_back(std::move(held));
  const size_t newest = s.history.size() - 1;
  if (opt.method == EditMethod::kWise) {
    // WISE: freeze the active memory and start a fresh one with a new random mask.
    if (static_cast<int>(s.history.size()) % opt.wise_save_freq == 0) s.bank.StartWiseMemory();
    return;
  }
  s.replay.Commit(plan.replay_slot, newest, expert, plan.question.a);
  // Router (Eq. 7): CE over the current edit and the replay buffer.
  if (opt.router_steps > 0) {
    std::vector<at::Tensor> feats{plan.fingerprint};
    std::vector<int64_t> labels{expert};
    for (const auto& r : s.replay.entries()) {
      if (r.edit == newest || s.history[r.edit].superseded) continue;
      feats.push_back(s.history[r.edit].fingerprint);
      labels.push_back(r.expert);
    }
    at::AutoGradMode grad(true);
    s.router.Train(at::stack(feats), at::tensor(labels, s.model->id_options()), opt.router_steps, opt.router_lr);
  }
}

absl::StatusOr<EditResult> Editor::Impl::Apply(const EditRequest& edit, bool publish, const Budget& budget) {
  const auto t0 = std::chrono::steady_clock::now();
  EditResult res;
  // Planning draws from the generator; a failure puts it back, so the editor is exactly as it was.
  const std::mt19937_64 rng_before = s.rng;
  absl::Status st = GuardTorch("edit", [&]() -> absl::Status {
    EditPlan plan = Plan(edit);
    MOKE_ASSIGN_OR_RETURN(TrainedExpert trained, TrainExpert(plan.training, budget));
    Commit(edit, plan, trained);  // no errors expected past this point
    res.version = s.version;
    res.subject = plan.key->subject;
    if (!plan.superseded.empty()) res.superseded_version = s.history[plan.superseded.back()].version;
    res.expert = plan.choice.expert;
    res.new_concept = plan.choice.new_concept;
    res.iterations = trained.iterations;
    res.loss = trained.loss;
    return absl::OkStatus();
  });
  if (!st.ok()) {
    s.rng = rng_before;
    return st;
  }
  if (publish) Publish();
  res.seconds = Seconds(t0);
  return res;
}

void Editor::Impl::Publish() {
  KnowledgeState::Parts p;
  p.model = s.model;
  p.options = s.options;
  p.layer = s.layer;
  p.version = s.version;
  p.w_org = s.bank.w_org();
  p.experts = s.bank.Serve();
  p.thresholds = s.bank.Thresholds(s.options.threshold_factor);
  if (s.router.defined()) {
    auto t = s.router.Tensors();
    p.router_w = t[0].clone();
    p.router_b = t[1].clone();
  }
  for (const auto& h : s.history) {
    if (h.superseded) continue;
    p.facts.push_back(h.key);
    p.fact_expert.push_back(h.expert);
    p.fact_version.push_back(h.version);
    p.fact_answer_tokens.push_back(h.answer_tokens);
  }
  p.scope = ScopeThresholdsOf(s.options);
  auto view = std::make_shared<const KnowledgeView>(std::make_shared<const KnowledgeState>(std::move(p)));
  absl::MutexLock lock(&mu);
  current = std::move(view);
}

// ---- Editor ----

Editor::Editor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Editor::~Editor() = default;

absl::StatusOr<std::unique_ptr<Editor>> Editor::Create(const EditorOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->s.options = options;
  MOKE_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Editor>(new Editor(std::move(impl)));
}

const EditorOptions& Editor::options() const { return impl_->s.options; }

absl::Status Editor::ValidateEdit(const EditRequest& edit) const {
  const LlamaModel& m = *impl_->s.model;
  const EditorOptions& opt = impl_->s.options;
  const int64_t window = m.config().max_position_embeddings;
  const int64_t a = static_cast<int64_t>(m.EncodeContinuation(edit.answer).size());
  if (a == 0) return absl::InvalidArgumentError("answer has no tokens");
  if (a > opt.max_answer_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("answer has ", a, " tokens; the limit (max_answer_tokens) is ", opt.max_answer_tokens));
  }
  const int64_t q = static_cast<int64_t>(m.EncodePrompt(edit.question).size());
  if (q <= 1) return absl::InvalidArgumentError("question has no tokens");
  const int64_t taught = a + (opt.teach_end_of_answer ? 1 : 0);
  if (q + taught + impl_->s.augmenter.LongestPrefixTokens() > window) {
    return absl::InvalidArgumentError(absl::StrCat("question (", q, " tokens) and answer (", a,
                                                   " tokens) do not fit the context window of ", window));
  }
  if (!edit.subject.empty() && edit.question.find(edit.subject) == std::string::npos) {
    return absl::InvalidArgumentError("subject: it does not occur in the question");
  }
  if (edit.paraphrases.size() > kMaxParaphrases) {
    return absl::InvalidArgumentError(
        absl::StrCat("paraphrases: ", edit.paraphrases.size(), " given; the limit is ", kMaxParaphrases));
  }
  for (const auto& p : edit.paraphrases) {
    if (static_cast<int64_t>(m.EncodePrompt(p).size()) >= window) {
      return absl::InvalidArgumentError("paraphrases: one is longer than the context window");
    }
  }
  for (const auto& u : edit.unrelated) {
    if (static_cast<int64_t>(m.EncodePrompt(u).size()) > window) {
      return absl::InvalidArgumentError("unrelated_prompts: one is longer than the context window");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RetractResult> Editor::Retract(const RetractRequest& request, bool publish) {
  SerialCheck::Scope serial(impl_->serial, "Editor::Retract");
  EditorState& s = impl_->s;
  std::optional<size_t> target;
  if (request.version > 0) {
    for (size_t h = 0; h < s.history.size(); ++h) {
      if (s.history[h].version == request.version && !s.history[h].superseded) target = h;
    }
    if (!target) {
      return absl::NotFoundError(absl::StrCat("no held edit made version ", request.version,
                                              " (unknown, replaced by a later edit, or retracted)"));
    }
  } else {
    for (size_t h = 0; h < s.history.size(); ++h) {
      if (!s.history[h].superseded && s.history[h].question == request.question) target = h;
    }
    if (!target) {  // a rewording: the fact the question asks about
      MOKE_RETURN_IF_ERROR(GuardTorch("retract", [&] {
        std::vector<size_t> live;
        std::vector<const FactKey*> keys;
        for (size_t h = 0; h < s.history.size(); ++h) {
          if (s.history[h].superseded) continue;
          live.push_back(h);
          keys.push_back(s.history[h].key.get());
        }
        const ScopeDecision d = AskedFact(*s.model, request.question, ActivationsOf(*s.model, s.layer, request.question).a,
                                          keys, ScopeThresholdsOf(s.options));
        if (d.index >= 0) target = live[d.index];
        return absl::OkStatus();
      }));
    }
    if (!target) return absl::NotFoundError("no held edit answers this question");
  }
  HeldEdit& h = s.history[*target];
  h.superseded = true;
  h.retracted = true;
  ++s.version;
  RetractResult r{s.version, h.version, h.question};
  if (publish) impl_->Publish();
  return r;
}

absl::StatusOr<EditResult> Editor::ApplyEdit(const EditRequest& edit, bool publish, const Budget& budget) {
  SerialCheck::Scope serial(impl_->serial, "Editor::ApplyEdit");
  MOKE_RETURN_IF_ERROR(ValidateEdit(edit));
  return impl_->Apply(edit, publish, budget);
}

void Editor::Publish() {
  SerialCheck::Scope serial(impl_->serial, "Editor::Publish");
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->current && impl_->current->version() == impl_->s.version) return;
  }
  impl_->Publish();
}

std::shared_ptr<const KnowledgeView> Editor::Current() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->current;
}

EditorStats Editor::Stats() const {
  SerialCheck::Scope serial(impl_->serial, "Editor::Stats");
  const EditorState& s = impl_->s;
  EditorStats st;
  st.version = s.version;
  st.edits_applied = s.history.size();
  st.num_experts = s.bank.size();
  st.edit_layer = static_cast<int>(s.layer);
  st.replay_size = s.replay.size();
  st.memory_bytes["model"] = s.model->load_stats().weight_bytes;
  // The experts as stored (mask bits + values in the model's dtype), and that over the live edits.
  st.memory_bytes["experts"] = s.bank.StorageBytes();
  int64_t live = 0;
  for (const auto& h : s.history) live += h.superseded ? 0 : 1;
  st.memory_bytes["experts_per_held_edit"] = live > 0 ? s.bank.StorageBytes() / live : 0;
  // What the history keeps of every edit (live or not): its fingerprint, scope keys and texts.
  int64_t history = 0;
  for (const auto& h : s.history) history += HeldEditBytes(h);
  st.memory_bytes["history"] = history;
  st.memory_bytes["per_held_edit"] = live > 0 ? (s.bank.StorageBytes() + history) / live : 0;
  st.memory_bytes["router"] = s.router.defined() ? int64_t{s.router.num_experts()} * (s.bank.w_org().size(1) + 1) * 4 : 0;
  int64_t replay_bytes = 0;
  for (const auto& r : s.replay.entries()) replay_bytes += r.a.defined() ? r.a.numel() * static_cast<int64_t>(r.a.element_size()) : 0;
  st.memory_bytes["replay"] = replay_bytes;
  return st;
}

absl::Status Editor::SaveSnapshot(const std::string& path) const {
  SerialCheck::Scope serial(impl_->serial, "Editor::SaveSnapshot");
  MOKE_ASSIGN_OR_RETURN(SnapshotData data, EncodeSnapshot(impl_->s));
  return WriteSnapshotFile(path, data);
}

absl::StatusOr<uint64_t> Editor::SnapshotVersion(const std::string& path) {
  MOKE_ASSIGN_OR_RETURN(SnapshotData data, ReadSnapshotFile(path));
  return SnapshotVersionOf(data, path);
}

absl::Status Editor::RestoreSnapshot(const std::string& path, std::optional<uint64_t> as_version, bool publish) {
  SerialCheck::Scope serial(impl_->serial, "Editor::RestoreSnapshot");
  MOKE_ASSIGN_OR_RETURN(SnapshotData data, ReadSnapshotFile(path));
  MOKE_RETURN_IF_ERROR(DecodeSnapshot(data, path, &impl_->s));
  if (as_version) impl_->s.version = *as_version;
  if (!publish) return absl::OkStatus();
  return GuardTorch("restore", [&] {
    impl_->Publish();
    return absl::OkStatus();
  });
}

}  // namespace moke
