// Fuzz target for the server's request checks (server/request_validation.cc: ValidateEdit, IsBlank,
// ValidateSnapshotName): the bytes of a request's text fields are untrusted.
//
//  * with clang and -fsanitize=fuzzer: a libFuzzer target (see CMakeLists.txt, "request validation");
//  * with MOKE_FUZZ_REPLAY: a plain executable (tests/fuzz/fuzz_replay.h) that feeds built-in seeds and
//    deterministic mutations of them through the same check; ctest runs it, under ASan/UBSan where available.
//
// Input: fields separated by 0x1F: question, answer, request_id, subject, then unrelated prompts.
// Promises checked on every accepted edit (a broken promise aborts): every field is valid UTF-8 and
// within its limit, question and answer are not blank, and the edit log record the edit becomes is one
// the log reader accepts (item 1 of issue 16: a request the reader would refuse is refused first).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/common/utf8.h"
#include "core/storage/edit_log.h"
#include "core/storage/snapshot_store.h"
#include "server/request_validation.h"

namespace {

[[noreturn]] void Broken(const char* what) {
  std::fprintf(stderr, "request_validation_fuzz: accepted input breaks a promise: %s\n", what);
  std::abort();
}

constexpr moke::server::RequestLimits kLimits{64, 32, 8};

bool CheckOne(const uint8_t* data, size_t size) {
  using namespace moke;
  const std::string in(reinterpret_cast<const char*>(data), size);
  (void)server::IsBlank(in);  // any bytes: must not read out of bounds
  std::vector<std::string> fields(1);
  for (char c : in) {
    if (c == '\x1F') {
      fields.emplace_back();
    } else {
      fields.back().push_back(c);
    }
  }
  fields.resize(std::max<size_t>(fields.size(), 4));
  server::EditSubmission e;
  e.question = fields[0];
  e.answer = fields[1];
  e.request_id = fields[2];
  e.subject = fields[3];
  e.unrelated.assign(fields.begin() + 4, fields.end());
  if (server::ValidateSnapshotName(fields[0]).ok() && !storage::SnapshotStore::IsValidName(fields[0])) {
    Broken("snapshot name accepted that the store refuses");
  }
  if (!server::ValidateEdit(e, kLimits).ok()) return false;
  for (const std::string* f : {&e.question, &e.answer, &e.request_id, &e.subject}) {
    if (!IsValidUtf8(*f)) Broken("field not UTF-8");
  }
  if (e.question.size() > kLimits.max_question_bytes || e.answer.size() > kLimits.max_answer_bytes) {
    Broken("over the byte limit");
  }
  if (server::IsBlank(e.question) || server::IsBlank(e.answer)) Broken("blank question or answer");
  for (const std::string& u : e.unrelated) {
    if (!IsValidUtf8(u) || server::IsBlank(u)) Broken("unrelated prompt not UTF-8 or blank");
  }
  storage::LogRecord r;
  r.type = storage::LogRecordType::kEdit;
  r.edit_id = 1;
  r.version = 1;
  r.question = e.question;
  r.answer = e.answer;
  r.request_id = e.request_id;
  r.unrelated = e.unrelated;
  std::string log(storage::kLogFileMagic, storage::kLogFileHeaderSize);
  log += storage::EncodeLogRecord(r);
  auto parsed = storage::ParseEditLog(log);
  if (!parsed.ok() || parsed->records.size() != 1 || !(parsed->records[0] == r)) {
    Broken("the edit log reader refuses the record of an accepted edit");
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckOne(data, size);
  return 0;
}

#ifdef MOKE_FUZZ_REPLAY
#include "tests/fuzz/fuzz_replay.h"

namespace {

std::vector<std::string> Seeds() {
  const std::string sep = "\x1F";
  std::vector<std::string> seeds = {
      "Who painted the door?" + sep + "Mia" + sep + "req-1" + sep + "door",
      "Qui a peint la porte ?" + sep + "Zo\xC3\xAB" + sep + sep + sep + "Once upon a time" + sep + "The cat",
      " \t" + sep + std::string("\0\0", 2),
      "\xE3\x80\x80" + sep + "\xC2\xA0" + sep + "\xE2\x80\x8B" + sep + "\xEF\xBB\xBF",
      "caf\xC3" + sep + "\xED\xA0\x80" + sep + "\xF0\x9F\x98\x80",
      "snap-12.bin" + sep + "a",
      "q" + sep + "a" + sep + sep,
  };
  std::string many = "q" + sep + "a" + sep + sep;
  for (int i = 0; i < 1025; ++i) many += sep + "u";
  seeds.push_back(many);
  return seeds;
}

bool Check(const std::string& in) { return CheckOne(reinterpret_cast<const uint8_t*>(in.data()), in.size()); }

}  // namespace

// request_validation_fuzz_replay [--mutations N] [CORPUS_DIR...]
int main(int argc, char** argv) {
  return moke::fuzz::ReplayMain(argc, argv, "request_validation_fuzz_replay", Seeds(), Check);
}
#endif
