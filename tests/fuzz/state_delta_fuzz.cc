// Fuzz target for the state-delta decoder (core/editor/state_delta_codec.cc: DecodeStateDelta), the
// parser of the bytes a follower receives from its editor.
//
//  * with clang and -fsanitize=fuzzer: a libFuzzer target (see CMakeLists.txt, "state delta" block);
//  * with MOKE_FUZZ_REPLAY: a plain executable (fuzz_replay.h) that ctest runs in every build, under
//    ASan/UBSan where the compiler has them: built-in seeds (full and step deltas with experts, a router,
//    facts) and deterministic mutations of them.
//
// Every input is parsed twice: as it is, and with its checksum recomputed, so that mutations reach the
// structure checks behind the CRC. Promises checked on every input (a broken promise aborts): an error
// is DATA_LOSS; an accepted input re-encodes to exactly its own bytes (the format has one spelling).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include "core/editor/state_delta_codec.h"
#include "core/storage/crc32c.h"

namespace {

[[noreturn]] void Broken(const char* what) {
  std::fprintf(stderr, "state_delta_fuzz: %s\n", what);
  std::abort();
}

bool Check(const std::string& in) {
  auto d = moke::DecodeStateDelta(in);
  if (!d.ok()) {
    if (d.status().code() != absl::StatusCode::kDataLoss) Broken("error is not DATA_LOSS");
    return false;
  }
  if (moke::EncodeStateDelta(*d) != in) Broken("an accepted input does not re-encode to its own bytes");
  return true;
}

// The input with its last 4 bytes replaced by the CRC-32C of the others.
std::string Resealed(const std::string& in) {
  if (in.size() < 4) return in;
  std::string s = in.substr(0, in.size() - 4);
  const uint32_t crc = moke::storage::Crc32c(s);
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(crc >> (8 * i)));
  return s;
}

bool ParseAndCheck(const std::string& in) {
  const bool as_is = Check(in);
  const bool resealed = Check(Resealed(in));
  return as_is || resealed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParseAndCheck(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}

#ifdef MOKE_FUZZ_REPLAY
#include <filesystem>
#include <fstream>

#include "tests/fuzz/fuzz_replay.h"

namespace {

moke::WireTensor F32(std::vector<int64_t> shape, float fill) {
  moke::WireTensor t;
  t.dtype = static_cast<uint8_t>(moke::WireDtype::kF32);
  t.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  for (int64_t i = 0; i < n; ++i) t.bytes.append(reinterpret_cast<const char*>(&fill), 4);
  return t;
}

std::vector<std::string> Seeds() {
  moke::StateDelta full;
  full.full = true;
  full.version = 7;
  full.model = {4, 8, 1, 2, 32, 0, 0xdeadbeef};
  full.options_json = R"({"num_experts":2,"routing":"act+router"})";
  full.num_experts = 2;
  for (uint32_t k = 0; k < 2; ++k) {
    moke::WireExpert e;
    e.index = k;
    e.bits.dtype = static_cast<uint8_t>(moke::WireDtype::kU8);
    e.bits.shape = {4};
    e.bits.bytes = std::string("\x0f\x00\xf0\x01", 4);
    e.values = F32({9}, 0.25f * (k + 1));
    full.experts.push_back(e);
  }
  full.thresholds = {0.5, std::numeric_limits<double>::infinity()};
  full.has_router = true;
  full.router_w = F32({2, 8}, 0.1f);
  full.router_b = F32({2}, 0.0f);
  moke::WireFact f;
  f.version = 3;
  f.expert = 1;
  f.answer_tokens = 2;
  f.question = "Who is the king of the forest?";
  f.subject = "the forest";
  f.names = {"the forest", "forest"};
  f.name_trigrams = {{1, 2, 3}, {4}};
  f.relations.push_back({{"who", "is", "<s>"}, F32({8}, 0.5f)});
  f.question_trigrams = {7, 8, 9};
  full.added_facts.push_back(f);

  moke::StateDelta step;
  step.from_version = 7;
  step.version = 9;
  step.num_experts = 2;
  step.experts.push_back(full.experts[1]);
  step.thresholds = full.thresholds;
  step.removed_facts = {3};
  f.version = 9;
  step.added_facts.push_back(f);

  moke::StateDelta empty;
  return {moke::EncodeStateDelta(full), moke::EncodeStateDelta(step), moke::EncodeStateDelta(empty)};
}

}  // namespace

// state_delta_fuzz_replay [--mutations N] [CORPUS_DIR...] | --write-seeds DIR (a libFuzzer corpus)
int main(int argc, char** argv) {
  for (const std::string& s : Seeds()) {
    if (!Check(s)) Broken("a seed does not parse");
  }
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    std::filesystem::create_directories(argv[2]);
    const auto seeds = Seeds();
    for (size_t k = 0; k < seeds.size(); ++k) {
      std::ofstream(std::string(argv[2]) + "/seed-" + std::to_string(k) + ".bin", std::ios::binary) << seeds[k];
    }
    return 0;
  }
  return moke::fuzz::ReplayMain(argc, argv, "state_delta_fuzz_replay", Seeds(), ParseAndCheck);
}
#endif  // MOKE_FUZZ_REPLAY
