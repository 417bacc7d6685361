// One training iteration of an edit against its arithmetic bound (issue 15): the time of an iteration of
// TrainExpert on one real edit (the editor's rows: the question, its augmented copies, the answer), the
// matrix-multiply FLOPs that iteration needs (forward and backward of the frozen path: the edit layer's
// down-projection, the layers above it, the LM head at the answer positions, the Delta scores), and the
// BLAS rate measured in the same run, interleaved with the iterations so that a shared machine's load
// falls on both alike.
//
//   iteration_benchmark --model models/stories260k --set profile=paper
//   iteration_benchmark --shape llama2-cpu --iterations 8 --repeats 3     # writes the checkpoint to a temp dir
//
// Time per iteration = (time of N iterations - time of 1) / (N - 1): the once-per-edit work (the frozen
// prefix, the batch) cancels. Bound = FLOPs / rate, rate = the BLAS rate on a 1024^3 product in the
// model's dtype (8192^3 on a GPU): the machine's limit; for reference also on the iteration's largest
// product (the head). --threads 1 by default (one core's limit on CPU).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/common/process_tuning.h"
#include "core/editor/activations.h"
#include "core/editor/augmentation.h"
#include "core/editor/editor_options.h"
#include "core/editor/trainer.h"
#include "core/experts/expert_math.h"
#include "core/model/llama_model.h"
#include "nlohmann/json.hpp"
#include "tests/benchmarks/bench_checkpoint.h"

namespace moke {
namespace {


[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "iteration_benchmark: %s\n", msg.c_str());
  std::exit(2);
}

double ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Flags {
  std::string model, shape, tokenizer, device = "cpu", json;
  std::string data = std::string(MOKE_SHARED_DIR) + "/data/zsre/zsre_mend_eval_portability_gpt4.json";
  int record = 0, iterations = 20, repeats = 3, threads = 1;
  nlohmann::json settings = nlohmann::json::object();
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") f.model = val();
    else if (a == "--shape") f.shape = val();
    else if (a == "--tokenizer") f.tokenizer = val();
    else if (a == "--device") f.device = val();
    else if (a == "--data") f.data = val();
    else if (a == "--json") f.json = val();
    else if (a == "--record") f.record = std::stoi(val());
    else if (a == "--iterations") f.iterations = std::stoi(val());
    else if (a == "--repeats") f.repeats = std::stoi(val());
    else if (a == "--threads") f.threads = std::stoi(val());
    else if (a == "--set") {  // key=value, the value as JSON (a bare word is a string)
      const std::string kv = val();
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) Die("--set wants key=value");
      auto j = nlohmann::json::parse(kv.substr(eq + 1), nullptr, false);
      f.settings[kv.substr(0, eq)] = j.is_discarded() ? nlohmann::json(kv.substr(eq + 1)) : j;
    } else {
      Die("unknown argument \"" + a + "\" (see the comment at the top of iteration_benchmark.cc)");
    }
  }
  if (f.model.empty() == f.shape.empty()) Die("give exactly one of --model DIR and --shape NAME");
  if (f.iterations < 2 || f.repeats < 1) Die("--iterations >= 2, --repeats >= 1");
  return f;
}

// Matrix-multiply FLOPs of one iteration of the frozen path. B rows of T positions (P = B * T), A answer
// positions, P_o prompt positions of x_o (margin loss) and P_m of the replayed edit (memory loss).
// Forward: a tau^T; every layer above the edit layer in full but the last, whose output projection and
// MLP run at the A answer positions; the head at A. Backward: the input gradient of each product (the
// weights are frozen), both operands' gradients for the attention products, the weight gradient of
// a tau^T, and of the Delta products.
struct IterationFlops {
  double forward = 0, backward = 0;
  double total() const { return forward + backward; }
};

IterationFlops CountFlops(const ModelConfig& c, int64_t layer, int64_t B, int64_t T, int64_t A, int64_t P_o,
                          int64_t P_m) {
  const double D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const double Hq = c.num_attention_heads * c.head_dim, Hkv = c.num_key_value_heads * c.head_dim;
  const double P = static_cast<double>(B * T);
  const int64_t last = c.num_hidden_layers - 1;
  IterationFlops f;
  auto product = [&](double m, double k, double n, double backward_factor) {
    f.forward += 2 * m * k * n;
    f.backward += backward_factor * 2 * m * k * n;
  };
  product(P, F, D, 1);  // a tau^T (backward: the gradient of tau)
  for (int64_t l = layer + 1; l <= last; ++l) {
    const double rows = l == last ? static_cast<double>(A) : P;
    product(P, D, Hq, 1);      // q
    product(P, D, 2 * Hkv, 1); // k, v
    product(static_cast<double>(B) * c.num_attention_heads * T, c.head_dim, T, 2);  // scores
    product(static_cast<double>(B) * c.num_attention_heads * T, T, c.head_dim, 2);  // probs v
    product(rows, Hq, D, 1);   // o
    product(rows, D, 2 * F, 1);  // gate, up
    product(rows, F, D, 1);    // down
  }
  product(static_cast<double>(A), D, V, 1);  // head
  if (P_o > 0) product(static_cast<double>(P_o), F, D, 1);
  if (P_m > 0) product(static_cast<double>(P_m), F, D, 1);
  return f;
}

// Seconds for one product [m, k] x [k, n] in `dtype` (median of a few after a warm-up).
double GemmSeconds(int64_t m, int64_t k, int64_t n, c10::Device device, c10::ScalarType dtype) {
  at::NoGradGuard ng;
  at::Tensor a = at::randn({m, k}, at::TensorOptions().device(device).dtype(dtype)), b = at::randn({k, n}, a.options());
  std::vector<double> t;
  for (int r = 0; r < 6; ++r) {
    const double t0 = Now();
    at::Tensor c = at::mm(a, b);
    (void)c.sum().item<float>();
    if (r > 0) t.push_back(Now() - t0);
  }
  return Median(t);
}

}  // namespace
}  // namespace moke

int main(int argc, char** argv) {
  using namespace moke;
  const std::string process_settings = ConfigureProcess(argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const Flags f = ParseFlags(argc, argv);
  std::fprintf(stderr, "process: %s\n", process_settings.c_str());

  auto checkpoint = BenchCheckpoint::Make(f.model, f.shape, 0, f.device, f.tokenizer, "moke_iter_bench");
  if (!checkpoint.ok()) Die(checkpoint.status().ToString());
  const std::string model_dir = checkpoint->dir();

  EditorOptions opt;
  if (auto st = ParseEditorOptions(f.settings.dump(), &opt); !st.ok()) Die(st.ToString());
  LoadOptions lo;
  lo.dir = model_dir;
  lo.device = f.device;
  lo.dtype = opt.dtype;
  auto loaded = LlamaModel::Load(lo);
  if (!loaded.ok()) Die(loaded.status().ToString());
  std::shared_ptr<const LlamaModel> model = std::move(*loaded);
  const ModelConfig& c = model->config();
  at::set_num_threads(ConfigureComputeThreads(f.threads, c.NumParameters()));
  const int64_t layer = opt.edit_layer >= 0 ? opt.edit_layer
                                            : std::max<int64_t>(0, std::llround(0.8 * c.num_hidden_layers) - 1);  // as the editor

  // One ZsRE edit as the editor builds it.
  std::string question = "What is the capital of the sports club?", answer = "Springfield", unrelated = "who wrote the song";
  if (std::ifstream in(f.data); in) {
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_array() && f.record < static_cast<int>(j.size())) {
      question = j[f.record]["src"];
      answer = j[f.record]["alt"];
      unrelated = j[f.record]["loc"];
    }
  }
  std::mt19937_64 rng(opt.seed);
  const Augmenter aug = Augmenter::Create(model, opt.num_prefixes);
  std::vector<int64_t> answer_ids = model->EncodeContinuation(answer);
  if (opt.teach_end_of_answer) answer_ids.push_back(c.eos_token_id);
  TrainingProblem p;
  p.model = model.get();
  p.layer = layer;
  p.options = &opt;
  p.rows = aug.Rows(question, answer_ids, opt.augment, rng);
  p.w_org = model->down_weight(layer).to(at::kFloat).clone();
  p.mask = DisjointMasks(opt.num_experts, opt.mask_ratio, c.hidden_size, c.intermediate_size, opt.seed)[0].to(model->device());
  p.tau = at::zeros_like(p.w_org);
  p.unrelated = PadActivations({ActivationsOf(*model, layer, unrelated).a});
  if (opt.memory_loss) {  // a replayed edit held by another expert
    const at::Tensor other = DisjointMasks(opt.num_experts, opt.mask_ratio, c.hidden_size, c.intermediate_size, opt.seed)[1];
    p.replay = ReplayedEdit{ActivationsOf(*model, layer, "Who is the author of the novel?").a,
                            0.01 * at::randn_like(p.w_org) * other.to(model->device())};
  }
  int64_t B = static_cast<int64_t>(p.rows.size()), T = 0, A = 0;
  for (const auto& r : p.rows) {
    T = std::max<int64_t>(T, r.ids.size());
    A += static_cast<int64_t>(r.ids.size()) - r.answer_begin;
  }
  const int64_t P_o = opt.margin_loss ? p.unrelated.a.size(0) * p.unrelated.a.size(1) : 0;
  const int64_t P_m = p.replay ? p.replay->a.size(1) : 0;
  const IterationFlops flops = CountFlops(c, layer, B, T, A, P_o, P_m);

  // Timed: TrainExpert with N and with 1 iteration (every iteration runs: stop_loss 0), and the BLAS rate,
  // interleaved, `repeats` times.
  auto train = [&](int n) {
    opt.max_iterations = n;
    opt.stop_loss = 0;
    const double w0 = Now(), c0 = ThreadCpu();
    auto r = TrainExpert(p, Budget());
    if (!r.ok()) Die(r.status().ToString());
    (void)r->tau.sum().item<float>();
    return std::pair<double, double>{Now() - w0, ThreadCpu() - c0};
  };
  train(2);  // warm-up
  const int64_t sq = model->device().is_cpu() ? 1024 : 8192;  // a product that reaches the BLAS's peak
  std::vector<double> wall, cpu, square_rate, head_rate;
  for (int r = 0; r < f.repeats; ++r) {
    const auto [wn, cn] = train(f.iterations);
    const auto [w1, c1] = train(1);
    wall.push_back((wn - w1) / (f.iterations - 1));
    cpu.push_back((cn - c1) / (f.iterations - 1));
    square_rate.push_back(2.0 * sq * sq * sq / GemmSeconds(sq, sq, sq, model->device(), model->dtype()));
    head_rate.push_back(2.0 * A * c.hidden_size * c.vocab_size /
                        GemmSeconds(A, c.hidden_size, c.vocab_size, model->device(), model->dtype()));
  }
  const double it_s = Median(wall), it_cpu = Median(cpu), rate = Median(square_rate), hrate = Median(head_rate);
  const double bound = flops.total() / rate;
  std::printf("model %s: d_model %lld, d_ff %lld, %lld layers, vocab %lld; edit layer %lld; %s, threads %d\n",
              f.shape.empty() ? model_dir.c_str() : f.shape.c_str(), (long long)c.hidden_size,
              (long long)c.intermediate_size, (long long)c.num_hidden_layers, (long long)c.vocab_size, (long long)layer,
              f.device.c_str(), f.threads);
  std::printf("edit: %lld rows x %lld positions, %lld answer positions; margin loss %s, memory loss %s\n", (long long)B,
              (long long)T, (long long)A, opt.margin_loss ? "on" : "off", p.replay ? "on" : "off");
  std::printf("| per iteration (wall) | CPU | GFLOP (fwd + bwd) | BLAS GFLOP/s (%lld^3, %s) | bound | time / bound | "
              "BLAS GFLOP/s (head %lldx%lldx%lld) |\n|---|---|---|---|---|---|---|\n",
              (long long)sq, c10::toString(model->dtype()), (long long)A, (long long)c.hidden_size, (long long)c.vocab_size);
  std::printf("| %.2f ms | %.2f ms | %.3f (%.3f + %.3f) | %.1f | %.2f ms | %.2fx | %.1f |\n", it_s * 1e3, it_cpu * 1e3,
              flops.total() / 1e9, flops.forward / 1e9, flops.backward / 1e9, rate / 1e9, bound * 1e3, it_s / bound,
              hrate / 1e9);
  std::ifstream la("/proc/loadavg");
  std::string load;
  std::getline(la, load);
  std::printf("load average: %s\n", load.c_str());
  if (!f.json.empty()) {
    nlohmann::json j = {{"model", f.shape.empty() ? model_dir : f.shape}, {"layer", layer}, {"rows", B},
                        {"positions", T}, {"answer_positions", A}, {"iteration_s", it_s}, {"iteration_cpu_s", it_cpu},
                        {"iteration_s_all", wall}, {"iteration_cpu_s_all", cpu}, {"flops", flops.total()}, {"flops_forward", flops.forward},
                        {"blas_flops_per_s", rate}, {"head_blas_flops_per_s", hrate}, {"bound_s", bound},
                        {"ratio", it_s / bound}, {"settings", f.settings}, {"loadavg", load}};
    std::ofstream(f.json) << j.dump(2) << "\n";
  }
  return 0;
}
