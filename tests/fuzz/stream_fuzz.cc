// Fuzz target for the edit-stream parser (client/bench/stream.cc: ParseStream), which reads files users
// bring to moke-bench (docs/streams.md, "Bringing your own stream").
//
//  * with clang and -fsanitize=fuzzer: a libFuzzer target (see CMakeLists.txt, "edit streams" block);
//  * with MOKE_FUZZ_REPLAY: a plain executable (fuzz_replay.h) that ctest runs in every build, under
//    ASan/UBSan where the compiler has them, on built-in seeds (nine-field and full streams, sLKE, hints
//    that collide with scored prompts) and deterministic mutations of them.
//
// Promises checked (a broken one aborts): a rejected input gets INVALID_ARGUMENT naming the source; an
// accepted one passes ValidateStream, and writing its edits out and parsing them again gives the same
// lines (the writer and the parser agree on every field).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "client/bench/stream.h"

namespace {

[[noreturn]] void Broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "stream_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::string Write(const moke::bench::EditStream& s) {
  std::string out;
  for (const moke::bench::StreamEdit& e : s.edits) out += moke::bench::SerializeStreamEdit(e) + "\n";
  return out;
}

bool ParseAndCheck(const std::string& in) {
  using namespace moke::bench;
  auto parsed = ParseStream(in, "fuzz.jsonl");
  if (!parsed.ok()) {
    if (parsed.status().code() != absl::StatusCode::kInvalidArgument) Broken("error is not INVALID_ARGUMENT", in);
    if (parsed.status().message().substr(0, 10) != "fuzz.jsonl") Broken("error does not name the source", in);
    return false;
  }
  if (!ValidateStream(*parsed, "fuzz.jsonl").ok()) Broken("accepted stream fails ValidateStream", in);
  const std::string written = Write(*parsed);
  auto again = ParseStream(written, "fuzz.jsonl");
  if (!again.ok()) Broken("a written stream does not parse", std::string(again.status().message()));
  if (Write(*again) != written) Broken("write -> parse -> write changed the stream", written);
  if (StreamQuestions(*again).size() > again->edits.size()) Broken("more questions than edits", written);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ParseAndCheck(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}

#ifdef MOKE_FUZZ_REPLAY
#include "tests/fuzz/fuzz_replay.h"

namespace {

std::vector<std::string> Seeds() {
  using namespace moke::bench;
  StreamEdit e;
  e.step = 1;
  e.qid = "0";
  e.question = "Who is the mother of Ann?";
  e.answer = "Besan\xC3\xA7on";
  e.rephrase = "Ann's mother is whom?";
  e.loc = "nq question: who sang y";
  e.loc_ans = "Z";
  e.subject = "Ann";
  const std::string nine = SerializeStreamEdit(e);
  e.paraphrases = {"Name Ann's mother."};
  e.hint_unrelated = {"nq question: who wrote z"};
  e.hard_loc = {{"Who is the mother of Bob?", "Cleo"}};
  e.reworded = {"The mother of Ann is"};
  e.rel_spec = {{"The father of Ann is", "Carl"}};
  e.aliases = {{"Who is the mother of Annie?", "Besan\xC3\xA7on"}};
  StreamEdit f = e;
  f.step = 2;
  f.answer = "Dora";
  f.final = true;
  const std::string full = SerializeStreamEdit(e) + "\n" + SerializeStreamEdit(f) + "\n";
  StreamEdit g = f;
  g.step = 3;
  g.qid = "q-1";
  g.question = "What is B?";
  g.hint_unrelated = {"The father of Ann is"};  // a hint that is scored: rejected
  return {nine + "\n", "\r\n" + nine + "\r\n\n", full, full + SerializeStreamEdit(g) + "\n", "", "[1]\n{\"step\":1}\n"};
}

}  // namespace

int main(int argc, char** argv) { return moke::fuzz::ReplayMain(argc, argv, "stream_fuzz_replay", Seeds(), ParseAndCheck); }
#endif  // MOKE_FUZZ_REPLAY
