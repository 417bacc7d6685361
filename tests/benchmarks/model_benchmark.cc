// Speed of the decoder on CPU: prefill and decode tokens/s, and KV-cached decoding against recomputing
// the whole sequence each step (Generate(..., use_cache=false)), on
//  * "small": the embedded stories260k model (64 wide, 5 layers), and
//  * "large": a random checkpoint of LLaMA proportions written to a temp dir at start-up
//    (d_model 512, d_ff 1376, 8 layers, 8 heads, vocab 32000, untied head; weights stored as BF16 and
//    run in fp32; ~58M parameters). Timings do not depend on the weights' values.
// The cached/uncached speed-up is measured in the same run and printed at the end (and as the
// `speedup_vs_cache` counter of the uncached benchmarks). batch_decode/small/R: R requests decoded together
// by the BatchDecoder (continuous batching, issue 17), 32 new tokens each; the summary prints its new
// tokens/s against one request's cached decode of the same length, measured in the same run.
// decode_attention/{products,loop}/R: one layer's attention of one new token for R rows, LibTorch's batched
// products against the CPU loop the decode steps use (ops::DecodeAttention); the summary prints the ratio.
//
//   model_benchmark                              # full run (< 60 s on 2 cores)
//   model_benchmark --benchmark_min_time=0.001   # smoke (ctest model_benchmark_smoke)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "core/common/process_tuning.h"
#include "core/model/batch_decode.h"
#include "core/model/decode_attention.h"
#include "core/model/llama_model.h"
#include "tests/testing/temp_dir.h"
#include "tools/make_checkpoint/checkpoint_maker.h"

namespace moke {
namespace {

struct BenchModel {
  std::unique_ptr<testing::TempDir> dir;  // the large model's files
  std::unique_ptr<LlamaModel> model;
};

BenchModel LoadSmall() {
  BenchModel b;
  auto m = LlamaModel::Load({.dir = MOKE_DEFAULT_MODEL_DIR});
  if (!m.ok()) {
    std::fprintf(stderr, "cannot load the small model: %s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  b.model = std::move(*m);
  return b;
}

BenchModel MakeLarge() {
  BenchModel b;
  b.dir = std::make_unique<testing::TempDir>("bench_large");
  tools::MakeOptions s;
  s.out_dir = b.dir->path();
  s.shape = *tools::ShapeByName("llama2-cpu");  // LLaMA-2-7B's proportions at 1/8 of the width
  s.shape.num_layers = 8;
  s.shape.max_position_embeddings = 2048;
  s.dtype = DType::kBF16;
  s.num_shards = 2;
  s.seed = 42;
  s.tokenizer_model = std::string(MOKE_DEFAULT_MODEL_DIR) + "/tokenizer.model";
  const auto t0 = std::chrono::steady_clock::now();
  if (auto st = tools::MakeCheckpoint(s); !st.ok()) {
    std::fprintf(stderr, "cannot write the large model: %s\n", st.status().ToString().c_str());
    std::exit(1);
  }
  auto m = LlamaModel::Load({.dir = b.dir->path(), .dtype = "float32"});
  if (!m.ok()) {
    std::fprintf(stderr, "cannot load the large model: %s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  b.model = std::move(*m);
  std::fprintf(stderr, "large model: %.1fM parameters, written and loaded in %.2f s\n",
               b.model->config().NumParameters() / 1e6,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return b;
}

const LlamaModel& Model(const std::string& which) {
  static BenchModel small, large;
  if (which == "small") {
    if (!small.model) small = LoadSmall();
    return *small.model;
  }
  if (!large.model) large = MakeLarge();
  return *large.model;
}

// A deterministic prompt of `n` ids: BOS then text tokens for the small model (so it writes on), ids
// spread over the vocabulary (never BOS/EOS) for the random one.
std::vector<int64_t> Prompt(const std::string& which, const LlamaModel& m, int64_t n) {
  std::vector<int64_t> ids;
  if (which == "small") {
    const std::string story = "Once upon a time, there was a little girl named Lily. She loved to play outside. ";
    while (static_cast<int64_t>(ids.size()) < n) {
      auto more = ids.empty() ? m.EncodePrompt(story) : m.EncodeContinuation(story);
      ids.insert(ids.end(), more.begin(), more.end());
    }
  } else {
    ids.push_back(1);
    for (int64_t i = 1; i < n; ++i) ids.push_back(3 + (i * 7919) % (m.config().vocab_size - 3));
  }
  ids.resize(n);
  return ids;
}

// Seconds per iteration of each benchmark, for the closing summary.
std::map<std::string, double>& Seconds() {
  static std::map<std::string, double> s;
  return s;
}

void BM_Prefill(benchmark::State& state, std::string which) {
  const LlamaModel& m = Model(which);
  const int64_t T = state.range(0);
  at::InferenceMode guard;
  at::Tensor ids = at::tensor(Prompt(which, m, T), m.id_options()).unsqueeze(0);  // [1, T]
  for (auto _ : state) {
    at::Tensor logits = m.Forward(ids);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * T),
                                                      benchmark::Counter::kIsRate);
}

// Greedy decoding of `new_tokens` after a `prompt`-token prompt; items are the new tokens only.
void BM_Decode(benchmark::State& state, std::string which, bool use_cache) {
  const LlamaModel& m = Model(which);
  const int64_t prompt = state.range(0), new_tokens = state.range(1);
  const auto ids = Prompt(which, m, prompt);
  std::vector<int64_t> out;
  double total = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    out = m.Generate(ids, static_cast<int>(new_tokens), nullptr, moke::Budget(), use_cache).tokens;
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (static_cast<int64_t>(out.size()) != new_tokens) {
    state.SkipWithError("greedy decoding stopped early (EOS/BOS): the timing would not compare like with like");
    return;
  }
  const std::string key = absl::StrCat(which, "/", prompt, "+", new_tokens);
  const double per_iter = total / static_cast<double>(state.iterations());
  Seconds()[key + (use_cache ? "/cached" : "/uncached")] = per_iter;
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * new_tokens),
                                                      benchmark::Counter::kIsRate);
  if (!use_cache) {
    auto it = Seconds().find(key + "/cached");
    if (it != Seconds().end()) state.counters["speedup_vs_cache"] = per_iter / it->second;
    // The two paths must agree token for token.
    if (m.Generate(ids, static_cast<int>(new_tokens)).tokens != out) {
      state.SkipWithError("cached and uncached greedy decoding disagree");
    }
  }
}

// R requests of the same prompt decoded together to 32 new tokens each: BatchDecoder::Start (their
// prompts in one forward), Join, then Step until every row is done. Items are the new tokens of all rows.
void BM_BatchDecode(benchmark::State& state, std::string which) {
  const LlamaModel& m = Model(which);
  const int rows = static_cast<int>(state.range(0));
  constexpr int kNew = 32;
  const auto ids = Prompt(which, m, 16);
  int64_t tokens = 0;
  double total = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<BatchDecoder::Request> requests(rows);
    for (auto& r : requests) {
      r.prompt_ids = ids;
      r.max_new_tokens = kNew;
    }
    BatchDecoder decoder(m, rows);
    uint64_t tag = 0;
    for (DecodeRow& row : BatchDecoder::Start(m, std::move(requests))) {
      tokens += static_cast<int64_t>(row.generation.tokens.size());
      if (!row.finished) decoder.Join(std::move(row), tag++);
    }
    while (decoder.rows() > 0) {
      for (const auto& e : decoder.Step()) tokens += e.token >= 0 ? 1 : 0;
    }
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (tokens != static_cast<int64_t>(state.iterations()) * rows * kNew) {
    state.SkipWithError("a row stopped early (EOS/BOS): the timing would not compare like with like");
    return;
  }
  Seconds()[absl::StrCat(which, "/batch/", rows)] = total / static_cast<double>(tokens);
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

// The attention of one new token per row at the small model's shape (8 query heads over 4 kv heads of 8),
// over the decoder's buffer [2, 16, KV, 64, hd] with rows of lengths 17..32 (a 16-token prompt and up to
// 16 new tokens): ops::DecodeAttentionLoop, the CPU loop the decode steps use, against
// ops::DecodeAttentionProducts, LibTorch's batched products that they used before. Items are rows.
void BM_DecodeAttention(benchmark::State& state, bool loop) {
  const int64_t n = state.range(0), H = 8, KV = 4, hd = 8, cap = 64;
  at::InferenceMode guard;
  at::manual_seed(1);
  at::Tensor kv = at::randn({2, 16, KV, cap, hd});
  at::Tensor q = at::randn({n, H, hd});
  std::vector<int64_t> lengths(n);
  for (int64_t i = 0; i < n; ++i) lengths[i] = 17 + (i * 5) % 16;
  const at::Tensor k = kv.select(0, 0), v = kv.select(0, 1);
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    at::Tensor out = loop ? ops::DecodeAttentionLoop(q, k, v, lengths) : ops::DecodeAttentionProducts(q, k, v, lengths);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  Seconds()[absl::StrCat("attention/", n, loop ? "/loop" : "/products")] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * n);
}

void Register() {
  using benchmark::RegisterBenchmark;
  for (const std::string which : {"small", "large"}) {
    const int64_t decode_new = which == "small" ? 64 : 32;
    RegisterBenchmark(("prefill/" + which).c_str(), BM_Prefill, which)
        ->Arg(which == "small" ? 64 : 128)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    RegisterBenchmark(("decode_cached/" + which).c_str(), BM_Decode, which, true)
        ->Args({16, decode_new})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    RegisterBenchmark(("decode_uncached/" + which).c_str(), BM_Decode, which, false)
        ->Args({16, decode_new})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  RegisterBenchmark("decode_cached/small", BM_Decode, std::string("small"), true)
      ->Args({16, 32})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  for (bool loop : {false, true}) {
    RegisterBenchmark(loop ? "decode_attention/loop" : "decode_attention/products", BM_DecodeAttention, loop)
        ->Arg(1)
        ->Arg(16)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  for (int rows : {1, 4, 16}) {
    RegisterBenchmark("batch_decode/small", BM_BatchDecode, std::string("small"))
        ->Arg(rows)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

void PrintSummary() {
  auto alone = Seconds().find("small/16+32/cached");
  for (const auto& [key, per_token] : Seconds()) {
    if (key.rfind("small/batch/", 0) != 0 || alone == Seconds().end()) continue;
    std::printf("batched decoding, %s rows: %.0f new tokens/s, %.2fx one request's cached decode (%.0f tokens/s)\n",
                key.substr(12).c_str(), 1.0 / per_token, (alone->second / 32) / per_token, 32 / alone->second);
  }
  for (int n : {1, 16}) {
    auto products = Seconds().find(absl::StrCat("attention/", n, "/products"));
    auto loop = Seconds().find(absl::StrCat("attention/", n, "/loop"));
    if (products == Seconds().end() || loop == Seconds().end()) continue;
    std::printf("decode attention, %d rows: the loop %.2fx LibTorch's products (%.1f against %.1f us per layer)\n", n,
                products->second / loop->second, loop->second * 1e6, products->second * 1e6);
  }
  for (const auto& [key, secs] : Seconds()) {
    const auto slash = key.rfind('/');
    if (key.substr(slash + 1) != "cached") continue;
    const std::string base = key.substr(0, slash);
    auto un = Seconds().find(base + "/uncached");
    if (un == Seconds().end()) continue;
    std::printf("KV cache speed-up %s (prompt+new tokens): %.2fx (cached %.1f ms, recomputed %.1f ms)\n", base.c_str(),
                un->second / secs, secs * 1e3, un->second * 1e3);
  }
}

}  // namespace
}  // namespace moke

int main(int argc, char** argv) {
  benchmark::AddCustomContext("process", moke::ConfigureProcess(argv));  // as moke-server does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  moke::Register();
  benchmark::RunSpecifiedBenchmarks();
  moke::PrintSummary();
  benchmark::Shutdown();
  return 0;
}
