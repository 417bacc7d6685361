// The replay driver for fuzz targets built with MOKE_FUZZ_REPLAY (a plain executable that ctest runs in
// every build): feeds built-in seeds, the files of any corpus folders given on the command line, and a
// fixed number of deterministic mutations of each (bit flips, truncations, deletions, garbage, splices
// of its own or another seed's bytes, boundary numbers written as text or as 4 bytes) through the
// target's check function. Header-only; the same seed always gives the same inputs.
//
//   int main(int argc, char** argv) { return moke::fuzz::ReplayMain(argc, argv, "x_fuzz_replay", Seeds(), Check); }
//   x_fuzz_replay [--mutations N] [CORPUS_DIR...]
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace moke::fuzz {

struct Rng {  // xorshift64*, fixed seed
  uint64_t s;
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

// One random byte-level change of `in` (`seeds`: where splices come from).
inline std::string MutateBytes(const std::string& in, const std::vector<std::string>& seeds, Rng& rng) {
  std::string s = in;
  switch (rng.Below(7)) {
    case 0:  // bit flips
      for (int k = 1 + static_cast<int>(rng.Below(3)); k > 0 && !s.empty(); --k) s[rng.Below(s.size())] ^= 1 << rng.Below(8);
      break;
    case 1:  // truncate
      s.resize(rng.Below(s.size() + 1));
      break;
    case 2: {  // delete a range
      const size_t a = rng.Below(s.size() + 1);
      s.erase(a, rng.Below(s.size() - a + 1));
      break;
    }
    case 3:  // append garbage
      for (int k = static_cast<int>(rng.Below(40)); k > 0; --k) s.push_back(static_cast<char>(rng.Next()));
      break;
    case 4: {  // splice a chunk of a seed (this one or another) in
      const std::string& from = seeds[rng.Below(seeds.size())];
      const size_t a = rng.Below(from.size() + 1), n = rng.Below(from.size() - a + 1);
      s.insert(rng.Below(s.size() + 1), from.substr(a, n));
      break;
    }
    case 5: {  // a boundary number, as text
      static const char* kTexts[] = {"0", "-1", "1e999", "18446744073709551616", "9223372036854775807",
                                     "-9223372036854775808", "null", "\"\"", "[]", "{}", "\"\\ud800\"", "\xff"};
      s.insert(rng.Below(s.size() + 1), kTexts[rng.Below(sizeof(kTexts) / sizeof(kTexts[0]))]);
      break;
    }
    default: {  // a boundary number, as 4 little-endian bytes
      if (s.size() < 4) break;
      const uint32_t vals[] = {0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 16u << 20, (16u << 20) + 1};
      const uint32_t v = vals[rng.Below(6)];
      const size_t at = rng.Below(s.size() - 3);
      for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (8 * i));
    }
  }
  return s;
}

// `check` parses one input, aborts on a broken promise, and returns whether the input was accepted.
inline int ReplayMain(int argc, char** argv, const char* name, std::vector<std::string> seeds,
                      bool (*check)(const std::string&)) {
  long mutations = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& e : std::filesystem::directory_iterator(arg)) {
        std::ifstream in(e.path(), std::ios::binary);
        seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
    } else {
      std::fprintf(stderr, "usage: %s [--mutations N] [CORPUS_DIR...]\n", argv[0]);
      return 2;
    }
  }
  Rng rng{0x9E3779B97F4A7C15ull};
  long accepted = 0, total = 0;
  for (const std::string& seed : seeds) {
    accepted += check(seed);
    ++total;
    std::string cur = seed;
    for (long m = 0; m < mutations; ++m) {
      cur = MutateBytes(rng.Below(4) == 0 ? seed : cur, seeds, rng);
      if (cur.size() > (1 << 16)) cur = seed;
      accepted += check(cur);
      ++total;
    }
  }
  std::printf("%s: %zu seeds, %ld inputs, %ld accepted, no invariant broken\n", name, seeds.size(), total, accepted);
  return 0;
}

}  // namespace moke::fuzz
