// moke-make-checkpoint: writes a Hugging Face-style LLaMA checkpoint folder of a named shape with seeded
// random weights (issue 10). See checkpoint_maker.h.
//
//   moke-make-checkpoint --shape llama2-cpu --out /tmp/llama2-cpu
//   moke-make-checkpoint --shape llama2-7b --out /data/llama2-7b --for-device cuda
//
// Exit status: 0 written, 2 bad arguments, 3 refused (does not fit: bytes needed and available printed),
// 1 other errors.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_join.h"
#include "core/common/process_tuning.h"
#include "tools/make_checkpoint/checkpoint_maker.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: moke-make-checkpoint --shape NAME --out DIR [options]\n"
               "  --shape NAME            %s\n"
               "  --out DIR               folder to write (must be empty unless --overwrite)\n"
               "  --tokenizer PATH        tokenizer.model to copy (default: the shared LLaMA-2 tokenizer,\n"
               "                          " MOKE_SHARED_DIR "/models/llama2-tokenizer/tokenizer.model,\n"
               "                          else ../shared/models/llama2-tokenizer/tokenizer.model)\n"
               "  --layers N              override the shape's layer count\n"
               "  --dtype bfloat16|float16|float32   storage dtype (default bfloat16)\n"
               "  --seed N                (default 42)\n"
               "  --shards N              1: one model.safetensors, no index (default max(2, ceil(bytes / 2 GiB)))\n"
               "  --threads N             generator threads (default: all)\n"
               "  --for-device cpu|cuda|none   cpu: refuse if float32 weights exceed MemAvailable (default cpu)\n"
               "  --disk-available-bytes N / --memory-available-bytes N   pretend (tests)\n"
               "  --overwrite\n",
               absl::StrJoin(moke::tools::ShapeNames(), ", ").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  moke::ConfigureAllocator();  // large weight buffers: reused, not mmapped and faulted in afresh
  moke::tools::MakeOptions o;
  std::string shape, dtype = "bfloat16";
  int layers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto num = [&]() -> long long {
      const std::string v = val();
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0) {
        std::fprintf(stderr, "%s: \"%s\" is not a non-negative integer\n", a.c_str(), v.c_str());
        std::exit(2);
      }
      return n;
    };
    if (a == "--shape") shape = val();
    else if (a == "--out") o.out_dir = val();
    else if (a == "--tokenizer") o.tokenizer_model = val();
    else if (a == "--layers") layers = static_cast<int>(num());
    else if (a == "--dtype") dtype = val();
    else if (a == "--seed") o.seed = static_cast<uint64_t>(num());
    else if (a == "--shards") o.num_shards = static_cast<int>(num());
    else if (a == "--threads") o.threads = static_cast<int>(num());
    else if (a == "--for-device") o.for_device = val();
    else if (a == "--disk-available-bytes") o.disk_available_bytes = num();
    else if (a == "--memory-available-bytes") o.memory_available_bytes = num();
    else if (a == "--overwrite") o.overwrite = true;
    else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument \"%s\"\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (shape.empty() || o.out_dir.empty()) {
    Usage();
    return 2;
  }
  auto s = moke::tools::ShapeByName(shape);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.status().message()).c_str());
    return 2;
  }
  o.shape = *s;
  if (layers > 0) o.shape.num_layers = layers;
  if (dtype == "bfloat16" || dtype == "bf16") o.dtype = moke::DType::kBF16;
  else if (dtype == "float16" || dtype == "fp16") o.dtype = moke::DType::kF16;
  else if (dtype == "float32" || dtype == "fp32") o.dtype = moke::DType::kF32;
  else {
    std::fprintf(stderr, "--dtype \"%s\" (bfloat16, float16, float32)\n", dtype.c_str());
    return 2;
  }
  if (o.tokenizer_model.empty()) {
    for (const std::string p : {std::string(MOKE_SHARED_DIR) + "/models/llama2-tokenizer/tokenizer.model",
                                std::string("../shared/models/llama2-tokenizer/tokenizer.model")}) {
      if (fs::is_regular_file(p)) {
        o.tokenizer_model = p;
        break;
      }
    }
    if (o.tokenizer_model.empty()) {
      std::fprintf(stderr, "no LLaMA-2 tokenizer.model found; pass --tokenizer PATH\n");
      return 2;
    }
  }
  auto st = moke::tools::MakeCheckpoint(o);
  if (!st.ok()) {
    std::fprintf(stderr, "moke-make-checkpoint: %s\n", std::string(st.status().message()).c_str());
    return st.status().code() == absl::StatusCode::kResourceExhausted ? 3
           : st.status().code() == absl::StatusCode::kInvalidArgument ? 2
                                                                      : 1;
  }
  std::printf("wrote %s: shape %s (d_model %lld, d_ff %lld, %lld layers, %lld heads, vocab %lld), %.1fM parameters, "
              "%lld bytes in %d shards, %s, seed %llu, %.1f s\n",
              o.out_dir.c_str(), o.shape.name.c_str(), (long long)o.shape.hidden_size, (long long)o.shape.intermediate_size,
              (long long)o.shape.num_layers, (long long)o.shape.num_heads, (long long)o.shape.vocab_size,
              st->parameters / 1e6, (long long)st->file_bytes, st->num_shards, moke::DTypeName(o.dtype),
              (unsigned long long)o.seed, st->seconds);
  return 0;
}
