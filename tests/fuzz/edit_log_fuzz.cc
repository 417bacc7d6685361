// Fuzz target for the edit log parser (core/storage/edit_log.cc: ParseEditLog, DecodeLogPayload).
//
//  * with clang and -fsanitize=fuzzer: a libFuzzer target (see CMakeLists.txt, "edit log" block);
//  * with MOKE_FUZZ_REPLAY: a plain executable whose main() feeds built-in seeds (valid logs with every
//    record type, torn tails), the files of an optional corpus folder, and deterministic mutations of each
//    (bit flips, truncations, splices, length fields set to boundary values) through the same entry point.
//    ctest runs it in every build, under ASan/UBSan where the compiler has them.
//
// Promises checked on every accepted input (a broken promise aborts):
//   valid_bytes + torn_tail_bytes == input size; re-encoding a current-format record reproduces its
//   bytes, an older-format one decodes to the same record, and the records cover the valid prefix;
//   edit ids are 1, 2, 3, ...; the torn tail holds no complete record and, past a partial header,
//   only zero bytes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/storage/crc32c.h"
#include "core/storage/edit_log.h"

namespace {

[[noreturn]] void Broken(const char* what) {
  std::fprintf(stderr, "edit_log_fuzz: accepted input breaks an invariant: %s\n", what);
  std::abort();
}

// The little-endian uint32 at `at` (the record header's fields).
uint32_t LeU32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

bool ParseAndCheck(const uint8_t* data, size_t size) {
  using namespace moke::storage;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseEditLog(in);
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kDataLoss) Broken("error is not DATA_LOSS");
    return false;
  }
  if (parsed->valid_bytes + parsed->torn_tail_bytes != size) Broken("valid + torn != size");
  // A torn tail is what a crash mid-append leaves: a prefix of one record, perhaps zero-filled. It never
  // holds a complete record (one whose checksum fails is corruption), and past a partial header only
  // zero bytes.
  if (parsed->valid_bytes >= kLogFileHeaderSize && parsed->torn_tail_bytes > 0) {
    const std::string_view tail = in.substr(parsed->valid_bytes);
    const bool header_ok = tail.size() >= kRecordHeaderSize &&
                           tail.substr(0, 4) == std::string_view("MKLR", 4) &&
                           moke::storage::Crc32cExtend(0, tail.data(), 12) == LeU32(tail, 12);
    if (header_ok) {
      const uint32_t len = LeU32(tail, 4);
      if (kRecordHeaderSize + uint64_t{len} <= tail.size()) Broken("a complete record was dropped as a torn tail");
    } else if (tail.size() > kRecordHeaderSize &&
               tail.find_first_not_of('\0', kRecordHeaderSize) != std::string_view::npos) {
      Broken("non-zero bytes after a partial record header were dropped as a torn tail");
    }
  }
  if (parsed->valid_bytes > 0) {
    uint64_t next_id = 1;
    uint64_t pos = kLogFileHeaderSize;
    for (const LogRecord& r : parsed->records) {
      if (r.type == LogRecordType::kEdit && r.edit_id != next_id++) Broken("edit ids not consecutive");
      const std::string again = EncodeLogRecord(r);
      if (pos + kRecordHeaderSize >= parsed->valid_bytes) Broken("more records than frames");
      const uint8_t format = static_cast<uint8_t>(in[pos + kRecordHeaderSize]);
      const size_t len = LeU32(in, pos + 4);
      if (format == kPayloadFormat) {
        if (in.substr(pos, kRecordHeaderSize + len) != again) Broken("re-encoding differs from the record read");
      } else {
        // An older format is rewritten in the current one: it must decode to the same record.
        auto back = DecodeLogPayload(std::string_view(again).substr(kRecordHeaderSize));
        if (!back.ok() || !(*back == r)) Broken("an older-format record does not survive re-encoding");
      }
      pos += kRecordHeaderSize + len;
    }
    if (pos != parsed->valid_bytes) Broken("records do not cover the valid prefix");
  } else if (!parsed->records.empty()) {
    Broken("records without valid bytes");
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParseAndCheck(data, size);
  return 0;
}

#ifdef MOKE_FUZZ_REPLAY
#include "tests/fuzz/fuzz_replay.h"
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace {

using Rng = moke::fuzz::Rng;  // xorshift64*, fixed seed: every run feeds the same inputs

std::vector<std::string> BuiltInSeeds() {
  using namespace moke::storage;
  std::vector<std::string> seeds;
  std::string log(kLogFileMagic, kLogFileHeaderSize);
  seeds.push_back(log);
  uint64_t id = 0;
  std::string last_record;
  for (int i = 0; i < 6; ++i) {
    LogRecord r;
    if (i == 3) {
      r.type = LogRecordType::kSnapshot;
      r.version = id;
      r.snapshot = "snap-" + std::to_string(id) + ".bin";
    } else if (i == 5) {
      r.type = LogRecordType::kRestore;
      r.version = 1;
      r.snapshot = "snap-1.bin";
    } else {
      r.type = LogRecordType::kEdit;
      r.edit_id = ++id;
      r.version = id;
      r.question = "question " + std::to_string(i) + " \xC3\xA9";
      r.answer = std::string(i * 7, 'a');
      r.request_id = i % 2 ? "req-" + std::to_string(i) : "";
      r.expert = i % 3;
      r.loss = 0.125 * i;
    }
    last_record = EncodeLogRecord(r);
    log += last_record;
    seeds.push_back(log);
  }
  seeds.push_back(log.substr(0, log.size() - 5));  // torn tail
  seeds.push_back(log.substr(0, 3));                // torn file header
  seeds.push_back(log + std::string(64, '\0'));                              // zero fill (torn)
  seeds.push_back(log + last_record.substr(0, 7) + std::string(200, '\0'));  // partial header + zero fill (torn)
  std::string damaged = log;  // a complete last record that fails its checksum (corruption)
  damaged[damaged.size() - 2] ^= 0x20;
  seeds.push_back(damaged);
  return seeds;
}

}  // namespace

// edit_log_fuzz_replay [--mutations N] [--write-seeds DIR] [CORPUS_DIR...]
int main(int argc, char** argv) {
  int mutations = 2000;
  std::vector<std::string> inputs = BuiltInSeeds();
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::atoi(argv[++i]);
    } else if (arg == "--write-seeds" && i + 1 < argc) {
      const std::string dir = argv[++i];
      std::filesystem::create_directories(dir);
      for (size_t k = 0; k < inputs.size(); ++k) {
        std::ofstream(dir + "/seed-" + std::to_string(k) + ".log", std::ios::binary) << inputs[k];
      }
      return 0;
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg)) {
        std::ifstream in(e.path(), std::ios::binary);
        inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
    }
  }
  Rng rng{0x9E3779B97F4A7C15ull};
  size_t accepted = 0, total = 0;
  for (const std::string& seed : inputs) {
    accepted += ParseAndCheck(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++total;
    std::string cur = seed;
    for (int m = 0; m < mutations; ++m) {
      cur = moke::fuzz::MutateBytes(rng.Below(4) == 0 ? seed : cur, inputs, rng);
      if (cur.size() > (1 << 16)) cur = seed;
      accepted += ParseAndCheck(reinterpret_cast<const uint8_t*>(cur.data()), cur.size());
      ++total;
    }
  }
  std::printf("edit_log_fuzz_replay: %zu inputs, %zu accepted, no invariant broken\n", total, accepted);
  return 0;
}
#endif
