#include "core/editor/ask_batch.h"

#include <ATen/ATen.h>

#include <deque>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/common/status_macros.h"
#include "core/editor/ask_plan.h"
#include "core/editor/knowledge_state.h"
#include "core/model/batch_decode.h"

namespace moke {

namespace {

// One Ask between its plan and its answer.
struct Request {
  std::shared_ptr<const KnowledgeView> view;  // the version it answers from, alive until done
  AskPlan plan;
  DecodeRow row;  // the prompt's forward and first token, made on the asker's thread (BatchDecoder::Start)
  Budget budget;
  AskBatcher::OnPiece on_piece;
  AskBatcher::Done done;
  std::vector<int64_t> tokens;  // streamed so far (only with on_piece)
  std::string text;             // their text, as sent
};

// Streams `token` to the request (when it streams): the token, and the text it completes.
void Emit(const LlamaModel& model, Request* r, int64_t token, bool whole_characters) {
  if (!r->on_piece) return;
  r->tokens.push_back(token);
  AskPiece piece;
  piece.tokens = {token};
  if (whole_characters) {
    std::string full = model.Decode(r->tokens);
    if (full.size() >= r->text.size() && full.compare(0, r->text.size(), r->text) == 0) {
      piece.text = full.substr(r->text.size());
      r->text = std::move(full);
    }
  }
  r->on_piece(piece);
}

void Finish(std::unique_ptr<Request> r, LlamaModel::Generation g) {
  absl::StatusOr<AskResult> result;
  absl::Status s = GuardTorch("ask", [&] {
    result = FinishAsk(r->view->state(), std::move(r->plan), std::move(g), r->budget);
    return absl::OkStatus();
  });
  r->done(s.ok() ? std::move(result) : absl::StatusOr<AskResult>(s));
}

}  // namespace

struct AskBatcher::Impl {
  Impl(const Options& o, std::shared_ptr<const KnowledgeView> a)
      : options(o), anchor(std::move(a)), model(anchor->state().model()), decoder(model, o.max_batch) {}

  void Loop();
  // The admitted requests' first tokens, then into the batch (or done: a first token that ends them).
  void Admit(std::vector<std::unique_ptr<Request>> admit);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stopping || !waiting.empty(); }
  bool BatchFull() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stopping || waiting.size() >= static_cast<size_t>(options.max_batch);
  }

  const Options options;
  const std::shared_ptr<const KnowledgeView> anchor;
  const LlamaModel& model;
  OverrideCache overrides;

  absl::Mutex mu;
  std::deque<std::unique_ptr<Request>> waiting ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool exited ABSL_GUARDED_BY(mu) = false;  // the loop ended: nothing pushed now would be decoded
  std::thread thread;

  // The decoder thread's own.
  BatchDecoder decoder;
  std::map<uint64_t, std::unique_ptr<Request>> active;
  uint64_t next_tag = 0;
};

absl::StatusOr<std::unique_ptr<AskBatcher>> AskBatcher::Create(Options options,
                                                               std::shared_ptr<const KnowledgeView> anchor) {
  if (options.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (options.window < std::chrono::microseconds(0)) return absl::InvalidArgumentError("the batching window must be >= 0");
  if (options.max_waiting < 1) return absl::InvalidArgumentError("max_waiting must be >= 1");
  if (!anchor) return absl::InvalidArgumentError("AskBatcher needs a view of the model");
  auto impl = std::make_unique<Impl>(options, std::move(anchor));
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<AskBatcher>(new AskBatcher(std::move(options), std::move(impl)));
}

AskBatcher::AskBatcher(Options options, std::unique_ptr<Impl> impl) : options_(std::move(options)), impl_(std::move(impl)) {}

AskBatcher::~AskBatcher() { Stop(); }

void AskBatcher::Stop() {
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

void AskBatcher::Ask(std::shared_ptr<const KnowledgeView> view, const std::string& question, int max_new_tokens,
                     std::optional<Routing> routing, const Budget& budget, OnPiece on_piece, Done done) {
  Impl& d = *impl_;
  {
    absl::MutexLock lock(&d.mu);
    if (d.stopping) return done(absl::UnavailableError("the answer batcher is stopping"));
    if (d.waiting.size() >= options_.max_waiting) {
      return done(absl::ResourceExhaustedError(
          absl::StrCat(d.waiting.size(), " answers are waiting for the batched decoder")));
    }
  }
  if (&view->state().model() != &d.model) {
    return done(absl::FailedPreconditionError("AskBatcher: a view of another model than the batcher's"));
  }
  auto r = std::make_unique<Request>();
  r->view = std::move(view);
  r->budget = budget;
  r->on_piece = std::move(on_piece);
  r->done = std::move(done);
  absl::Status s = GuardTorch("ask", [&]() -> absl::Status {
    at::InferenceMode guard;
    MOKE_ASSIGN_OR_RETURN(r->plan, PlanAsk(r->view->state(), question, max_new_tokens, routing, &d.overrides,
                                            /*keep_prefix=*/true));
    // The rest of the prompt's forward and its first token here too: the askers' threads run prompts side
    // by side, and the one decoder thread only steps.
    std::vector<BatchDecoder::Request> start;
    start.push_back({r->plan.ids, r->plan.limit, r->plan.override, r->budget, std::move(r->plan.prefix)});
    r->row = std::move(BatchDecoder::Start(d.model, std::move(start))[0]);
    return absl::OkStatus();
  });
  if (!s.ok()) return r->done(s);
  {
    absl::MutexLock lock(&d.mu);
    if (!d.exited) {
      d.waiting.push_back(std::move(r));  // may pass max_waiting by the askers in flight
      return;
    }
  }
  r->done(absl::UnavailableError("the answer batcher stopped"));
}

void AskBatcher::Impl::Admit(std::vector<std::unique_ptr<Request>> admit) {
  for (std::unique_ptr<Request>& r : admit) {
    DecodeRow& row = r->row;
    if (!row.generation.tokens.empty()) Emit(model, r.get(), row.generation.tokens.back(), row.pending == 0);
    if (row.finished) {
      LlamaModel::Generation g = std::move(row.generation);
      Finish(std::move(r), std::move(g));
      continue;
    }
    const uint64_t tag = next_tag++;
    absl::Status joined = GuardTorch("ask (joining the batch)", [&] {
      decoder.Join(std::move(row), tag);
      return absl::OkStatus();
    });
    if (!joined.ok()) {
      r->done(joined);
      continue;
    }
    active.emplace(tag, std::move(r));
  }
}

void AskBatcher::Impl::Loop() {
  at::InferenceMode guard;
  for (;;) {
    std::vector<std::unique_ptr<Request>> admit;
    {
      absl::MutexLock lock(&mu);
      if (decoder.rows() == 0) {
        mu.Await(absl::Condition(this, &Impl::HasWork));
        if (waiting.empty()) {  // stopping, and nothing left
          exited = true;
          return;
        }
        // Idle until now: give the others a moment to arrive, so that the first step is a batch.
        if (options.window.count() > 0) {
          mu.AwaitWithTimeout(absl::Condition(this, &Impl::BatchFull), absl::FromChrono(options.window));
        }
      }
      while (decoder.rows() + static_cast<int>(admit.size()) < options.max_batch && !waiting.empty()) {
        admit.push_back(std::move(waiting.front()));
        waiting.pop_front();
      }
    }
    if (!admit.empty()) Admit(std::move(admit));
    if (decoder.rows() == 0) continue;
    const int rows = decoder.rows();
    std::vector<BatchDecoder::Event> events;
    absl::Status s = GuardTorch("ask (batched decoding)", [&] {
      events = decoder.Step();
      return absl::OkStatus();
    });
    if (!s.ok()) {  // nothing is known of any row now: each fails
      decoder.Clear();
      for (auto& [tag, request] : active) request->done(s);
      active.clear();
      continue;
    }
    if (options.on_step) options.on_step(rows);
    for (BatchDecoder::Event& e : events) {
      auto it = active.find(e.tag);
      if (it == active.end()) continue;
      if (e.token >= 0) Emit(model, it->second.get(), e.token, e.whole_characters);
      if (e.finished) {
        Finish(std::move(it->second), std::move(e.generation));
        active.erase(it);
      }
    }
  }
}

}  // namespace moke
