// Fuzz target for SafetensorsFile::Parse, the first code that reads bytes of an untrusted checkpoint.
//
// Built two ways from this one file:
//  * with clang and -fsanitize=fuzzer,address (MOKE_BUILD_FUZZERS=ON): a libFuzzer binary;
//      safetensors_fuzz -max_total_time=60 tests/fuzz/corpus/safetensors
//  * with any compiler and MOKE_FUZZ_REPLAY defined: a plain executable whose main() feeds every file of
//    the seed corpus and a fixed number of deterministic mutations of each (bit flips, truncations,
//    boundary numbers written into the JSON header, wrong header lengths, splices) through the same
//    entry point. ctest runs it in the normal build (under ASan/UBSan where the compiler has them),
//    so the parser meets hostile bytes in every CI run, not only when someone runs the fuzzer.
//
// Besides "no crash, no out-of-bounds read", every file that Parse accepts must keep the promises the
// loader relies on; a broken promise aborts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/model/safetensors.h"

namespace {

[[noreturn]] void Broken(const char* what, const std::string& name) {
  std::fprintf(stderr, "safetensors_fuzz: accepted file breaks an invariant: %s (tensor \"%s\")\n", what,
               name.c_str());
  std::abort();
}

void CheckAccepted(const moke::SafetensorsFile& file, const uint8_t* data, size_t size) {
  for (const auto& [name, info] : file.tensors()) {
    if (info.begin > info.end) Broken("begin > end", name);
    // The byte count the shape and dtype promise, computed without wrapping.
    unsigned __int128 bytes = moke::DTypeSize(info.dtype);
    for (int64_t d : info.shape) {
      if (d < 0) Broken("negative dimension", name);
      bytes *= static_cast<uint64_t>(d);
      if (bytes > (static_cast<unsigned __int128>(1) << 64)) Broken("byte count beyond 2^64", name);
    }
    if (bytes != info.end - info.begin) Broken("shape x dtype size != data_offsets range", name);
    if (info.NumElements() < 0) Broken("NumElements() < 0", name);
    if (static_cast<unsigned __int128>(info.NumElements()) * moke::DTypeSize(info.dtype) != bytes) {
      Broken("NumElements() disagrees with the shape", name);
    }
    const uint8_t* p = file.DataOf(info);
    if (p < data || p > data + size || info.end - info.begin > static_cast<size_t>(data + size - p)) {
      Broken("data range outside the buffer", name);
    }
    // Touch every byte, so that ASan checks the range really is readable.
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < info.end - info.begin; ++i) sink = sink ^ p[i];
    (void)sink;
  }
}

// Parses one input and checks the result; true when the parser accepted it.
bool ParseAndCheck(const uint8_t* data, size_t size) {
  auto file = moke::SafetensorsFile::Parse(data, size, "fuzz.safetensors");
  if (file.ok()) {
    CheckAccepted(**file, data, size);
    return true;
  }
  if (file.status().message().find("fuzz.safetensors") == std::string::npos) {
    std::fprintf(stderr, "error does not name the file: %s\n", std::string(file.status().message()).c_str());
    std::abort();
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParseAndCheck(data, size);
  return 0;
}

#ifdef MOKE_FUZZ_REPLAY
#include "tests/fuzz/fuzz_replay.h"
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace {

using Rng = moke::fuzz::Rng;  // xorshift64*, fixed seed: every run feeds the same inputs

const char* const kNumbers[] = {"0",
                                "1",
                                "-1",
                                "7",
                                "8",
                                "4294967295",
                                "4294967296",
                                "2305843009213693953",
                                "4611686018427387905",
                                "9223372036854775807",
                                "9223372036854775808",
                                "18446744073709551615",
                                "18446744073709551616",
                                "1e308",
                                "0.5",
                                "null",
                                "\"8\"",
                                "[]",
                                "{}"};
const char kTokens[] = "{}[],:\"\\0123456789-eE. \x00\xff";

uint64_t HeaderLen(const std::string& b) {
  uint64_t n = 0;
  for (int i = 7; i >= 0 && b.size() >= 8; --i) n = (n << 8) | static_cast<uint8_t>(b[i]);
  return n;
}

void SetHeaderLen(std::string* b, uint64_t n) {
  if (b->size() < 8) b->resize(8, '\0');
  for (int i = 0; i < 8; ++i) (*b)[i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

std::string Mutate(const std::string& in, const std::vector<std::string>& seeds, Rng& rng) {
  std::string b = in;
  // Half the inputs get one change only: a boundary number in an otherwise valid header is what finds
  // arithmetic bugs, and further changes mostly make the header invalid JSON.
  const int steps = rng.Below(2) ? 1 : 2 + static_cast<int>(rng.Below(2));
  for (int s = 0; s < steps; ++s) {
    switch (rng.Below(9)) {
      case 0:  // flip a bit
        if (!b.empty()) b[rng.Below(b.size())] ^= static_cast<char>(1u << rng.Below(8));
        break;
      case 1:  // set a byte to a JSON-significant character
        if (!b.empty()) b[rng.Below(b.size())] = kTokens[rng.Below(sizeof(kTokens) - 1)];
        break;
      case 2:  // truncate
        b.resize(rng.Below(b.size() + 1));
        break;
      case 3: {  // replace a run of digits in the header with a boundary number
        const size_t hend = std::min<size_t>(b.size(), 8 + std::min<uint64_t>(HeaderLen(b), b.size()));
        std::vector<size_t> starts;
        for (size_t i = 8; i < hend; ++i) {
          if (std::isdigit(static_cast<unsigned char>(b[i])) && !std::isdigit(static_cast<unsigned char>(b[i - 1]))) {
            starts.push_back(i);
          }
        }
        if (starts.empty()) break;
        const size_t at = starts[rng.Below(starts.size())];
        size_t end = at;
        while (end < b.size() && std::isdigit(static_cast<unsigned char>(b[end]))) ++end;
        const std::string num = kNumbers[rng.Below(std::size(kNumbers))];
        b.replace(at, end - at, num);
        SetHeaderLen(&b, HeaderLen(b) + num.size() - (end - at));  // keep the header's end in place
        break;
      }
      case 4: {  // a wrong header length
        const uint64_t h = HeaderLen(b);
        const uint64_t options[] = {0, h - 1, h + 1, b.size(), b.size() - 8, ~0ull, 1ull << 63, rng.Next()};
        SetHeaderLen(&b, options[rng.Below(std::size(options))]);
        break;
      }
      case 5: {  // duplicate a chunk
        if (b.empty()) break;
        const size_t at = rng.Below(b.size()), len = 1 + rng.Below(std::min<size_t>(64, b.size() - at));
        b.insert(at, b.substr(at, len));
        break;
      }
      case 6: {  // delete a chunk
        if (b.empty()) break;
        const size_t at = rng.Below(b.size()), len = 1 + rng.Below(std::min<size_t>(16, b.size() - at));
        b.erase(at, len);
        break;
      }
      case 7: {  // splice: this file's head, another's tail
        const std::string& other = seeds[rng.Below(seeds.size())];
        b = b.substr(0, rng.Below(b.size() + 1)) + other.substr(rng.Below(other.size() + 1));
        break;
      }
      case 8: {  // insert a boundary number anywhere in the header
        const size_t hend = std::min<size_t>(b.size(), 8 + std::min<uint64_t>(HeaderLen(b), b.size()));
        if (hend <= 8) break;
        const std::string num = kNumbers[rng.Below(std::size(kNumbers))];
        b.insert(8 + rng.Below(hend - 8), num);
        SetHeaderLen(&b, HeaderLen(b) + num.size());
        break;
      }
    }
  }
  return b;
}

// Feeds `bytes` in a heap buffer of exactly its size, so that ASan sees any read past the end.
bool Feed(const std::string& bytes) {
  std::vector<uint8_t> buf(bytes.begin(), bytes.end());
  return ParseAndCheck(buf.empty() ? nullptr : buf.data(), buf.size());
}

}  // namespace

// Usage: safetensors_fuzz_replay [--mutations N] [--seed S] FILE_OR_DIR...
int main(int argc, char** argv) {
  long mutations = 2000;
  uint64_t seed = 20240601;
  std::vector<std::string> seeds, names;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::vector<std::filesystem::path> files;
      if (std::filesystem::is_directory(a)) {
        for (const auto& e : std::filesystem::directory_iterator(a)) {
          if (e.is_regular_file()) files.push_back(e.path());
        }
      } else {
        files.emplace_back(a);
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in) {
          std::fprintf(stderr, "cannot read %s\n", f.c_str());
          return 2;
        }
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        names.push_back(f.filename().string());
      }
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "usage: %s [--mutations N] [--seed S] FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  Rng rng{seed * 2 + 1};
  long accepted = 0, total = 0;
  for (size_t i = 0; i < seeds.size(); ++i) {
    accepted += Feed(seeds[i]);
    ++total;
    for (long m = 0; m < mutations; ++m) {
      accepted += Feed(Mutate(seeds[i], seeds, rng));
      ++total;
    }
  }
  std::printf("safetensors_fuzz_replay: %zu seeds, %ld inputs, %ld accepted, no invariant broken\n", seeds.size(),
              total, accepted);
  return 0;
}
#endif  // MOKE_FUZZ_REPLAY
