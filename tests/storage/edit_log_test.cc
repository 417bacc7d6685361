// The edit log: round trip, torn tail ignored (and truncated), corruption refused wherever it is.
#include "core/storage/edit_log.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace moke::storage {
namespace {

namespace fs = std::filesystem;

LogRecord Edit(uint64_t id, const std::string& q, const std::string& a, const std::string& rid = "") {
  LogRecord r;
  r.type = LogRecordType::kEdit;
  r.edit_id = id;
  r.version = id;
  r.unix_micros = 1700000000000000 + static_cast<int64_t>(id);
  r.question = q;
  r.answer = a;
  r.request_id = rid;
  r.expert = static_cast<int32_t>(id % 3);
  r.new_concept = id % 2 == 0;
  r.iterations = 7;
  r.loss = 0.25;
  r.apply_seconds = 0.5;
  return r;
}

class EditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moke_edit_log_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "edit.log").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string ReadAll() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void WriteAll(const std::string& s) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << s;
  }
  void WriteThree() {
    std::vector<LogRecord> recs;
    auto log = EditLog::Open(path_, &recs);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Append(Edit(1, "The capital of France is", "Paris", "r1")).ok());
    ASSERT_TRUE((*log)->Append(Edit(2, "Lily's dog is named", "Max \xE2\x9C\x93")).ok());
    ASSERT_TRUE((*log)->Append(Edit(3, "q3", "a3", "r3")).ok());
  }
  fs::path dir_;
  std::string path_;
};

TEST_F(EditLogTest, RoundTripAcrossReopen) {
  WriteThree();
  std::vector<LogRecord> recs;
  auto log = EditLog::Open(path_, &recs);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0], Edit(1, "The capital of France is", "Paris", "r1"));
  EXPECT_EQ(recs[1], Edit(2, "Lily's dog is named", "Max \xE2\x9C\x93"));
  LogRecord snap;
  snap.type = LogRecordType::kSnapshot;
  snap.version = 3;
  snap.snapshot = "snap-3.bin";
  ASSERT_TRUE((*log)->Append(snap).ok());
  ASSERT_TRUE((*log)->Append(Edit(4, "q4", "a4")).ok());
  log->reset();
  ASSERT_TRUE(EditLog::Open(path_, &recs).ok());
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[3], snap);
  EXPECT_EQ(recs[4].edit_id, 4u);
}

TEST_F(EditLogTest, EmptyAndNewFile) {
  std::vector<LogRecord> recs;
  ASSERT_TRUE(EditLog::Open(path_, &recs).ok());
  EXPECT_TRUE(recs.empty());
  EXPECT_EQ(fs::file_size(path_), kLogFileHeaderSize);
  ASSERT_TRUE(EditLog::Open(path_, &recs).ok());
  EXPECT_TRUE(recs.empty());
}

TEST_F(EditLogTest, TornTailIgnoredAndTruncated) {
  WriteThree();
  const std::string full = ReadAll();
  const std::string third = EncodeLogRecord(Edit(3, "q3", "a3", "r3"));
  // Every cut inside the last record is a torn tail: two records survive.
  for (size_t cut = 1; cut < third.size(); cut += 3) {
    WriteAll(full.substr(0, full.size() - cut));
    std::vector<LogRecord> recs;
    auto log = EditLog::Open(path_, &recs);
    ASSERT_TRUE(log.ok()) << "cut " << cut << ": " << log.status();
    ASSERT_EQ(recs.size(), 2u) << "cut " << cut;
    EXPECT_EQ(fs::file_size(path_), full.size() - third.size()) << "torn bytes truncated";
    // Appending after the truncation gives a clean log.
    ASSERT_TRUE((*log)->Append(Edit(3, "q3b", "a3b")).ok());
    log->reset();
    ASSERT_TRUE(EditLog::Open(path_, &recs).ok());
    ASSERT_EQ(recs.size(), 3u);
    EXPECT_EQ(recs[2].question, "q3b");
  }
}

TEST_F(EditLogTest, GarbageTailIgnored) {
  WriteThree();
  WriteAll(ReadAll() + std::string(100, '\0'));
  std::vector<LogRecord> recs;
  ASSERT_TRUE(EditLog::Open(path_, &recs).ok());
  EXPECT_EQ(recs.size(), 3u);
}

TEST_F(EditLogTest, CorruptMiddleRecordIsDataLoss) {
  WriteThree();
  std::string data = ReadAll();
  // Flip a byte inside the first record's payload.
  data[kLogFileHeaderSize + kRecordHeaderSize + 20] ^= 0x40;
  WriteAll(data);
  std::vector<LogRecord> recs;
  auto log = EditLog::Open(path_, &recs);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(log.status().message().find("corrupt"), std::string::npos) << log.status();
  EXPECT_EQ(ReadAll(), data) << "a corrupt log is left untouched";
}

TEST_F(EditLogTest, CorruptLengthFieldInMiddleIsDataLoss) {
  WriteThree();
  std::string data = ReadAll();
  data[kLogFileHeaderSize + 5] ^= 0x7F;  // record 1 length
  WriteAll(data);
  std::vector<LogRecord> recs;
  auto log = EditLog::Open(path_, &recs);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
}

// A complete last record whose checksum fails is damage, not a crash mid-append: refused with the
// file and the offset, never dropped as a torn tail.
TEST_F(EditLogTest, CorruptCompleteLastRecordIsDataLoss) {
  WriteThree();
  const std::string good = ReadAll();
  const size_t third = good.size() - EncodeLogRecord(Edit(3, "q3", "a3", "r3")).size();
  // Every single-byte change in the last record: its header (magic, length, both checksums) and payload.
  for (size_t at = third; at < good.size(); ++at) {
    std::string data = good;
    data[at] ^= 0x01;
    WriteAll(data);
    std::vector<LogRecord> recs;
    auto log = EditLog::Open(path_, &recs);
    ASSERT_FALSE(log.ok()) << "byte " << at - third << " of the last record changed, yet the log opened with "
                           << recs.size() << " records";
    EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(log.status().message().find(path_), std::string::npos) << log.status();
    EXPECT_NE(log.status().message().find("at byte " + std::to_string(third)), std::string::npos) << log.status();
    EXPECT_EQ(ReadAll(), data) << "a corrupt log is left untouched";
  }
}

// What a crash mid-append can leave: a prefix of the record, then perhaps zero bytes where the file
// system extended the file without writing the data. Torn, ignored, truncated.
TEST_F(EditLogTest, PrefixThenZeroFillIsTorn) {
  const std::string two = std::string(kLogFileMagic, kLogFileHeaderSize) + EncodeLogRecord(Edit(1, "q1", "a1")) +
                          EncodeLogRecord(Edit(2, "q2", "a2"));
  LogRecord last = Edit(3, "q3", "a3");
  last.unrelated = {"an unrelated prompt"};
  const std::string third = EncodeLogRecord(last);
  // The payload ends in zero bytes (retracted_version 0 of an edit), so a fill can remake the record.
  const size_t trailing_zeros = third.size() - 1 - third.find_last_not_of('\0');
  ASSERT_GT(trailing_zeros, 0u);
  for (size_t keep : {size_t{0}, size_t{2}, size_t{4}, size_t{11}, kRecordHeaderSize - 1, kRecordHeaderSize,
                      kRecordHeaderSize + 9, third.size() - trailing_zeros - 1, third.size() - trailing_zeros,
                      third.size() - 1}) {
    for (size_t zeros : {size_t{0}, size_t{5}, third.size() - std::min(keep, third.size()), size_t{4096}}) {
      WriteAll(two + third.substr(0, keep) + std::string(zeros, '\0'));
      std::vector<LogRecord> recs;
      auto log = EditLog::Open(path_, &recs);
      const bool complete = keep >= kRecordHeaderSize && keep + zeros >= third.size();
      if (complete && keep >= third.size() - trailing_zeros) {
        // The fill wrote what the append would have: the record is whole; the zeros after it are torn.
        ASSERT_TRUE(log.ok()) << "keep " << keep << " zeros " << zeros << ": " << log.status();
        EXPECT_EQ(recs.size(), 3u) << "keep " << keep << " zeros " << zeros;
        EXPECT_EQ(ReadAll(), two + third) << "keep " << keep << " zeros " << zeros;
        continue;
      }
      // A verified header whose payload is complete but zero-filled fails its checksum: corruption.
      if (complete) {
        ASSERT_FALSE(log.ok()) << "keep " << keep << " zeros " << zeros;
        EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
        continue;
      }
      ASSERT_TRUE(log.ok()) << "keep " << keep << " zeros " << zeros << ": " << log.status();
      EXPECT_EQ(recs.size(), 2u) << "keep " << keep << " zeros " << zeros;
      EXPECT_EQ(ReadAll(), two) << "keep " << keep << " zeros " << zeros << ": torn bytes truncated";
    }
  }
}

// Bytes that cannot be the start of a record are not a torn append, however few.
TEST_F(EditLogTest, ForeignBytesAtTheEndAreDataLoss) {
  WriteThree();
  const std::string full = ReadAll();
  for (const std::string tail : {std::string("x"), std::string("MKLx"), std::string(40, 'x'),
                                 std::string("garbage") + std::string(100, '\0')}) {
    WriteAll(full + tail);
    std::vector<LogRecord> recs;
    auto log = EditLog::Open(path_, &recs);
    ASSERT_FALSE(log.ok()) << "tail '" << tail << "'";
    EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(log.status().message().find("at byte " + std::to_string(full.size())), std::string::npos)
        << log.status();
  }
}

TEST_F(EditLogTest, ForeignFileRefused) {
  WriteAll("hello world, not a log");
  std::vector<LogRecord> recs;
  auto log = EditLog::Open(path_, &recs);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
}

TEST(EditLogParse, EditIdsMustBeConsecutive) {
  std::string data(kLogFileMagic, kLogFileHeaderSize);
  data += EncodeLogRecord(Edit(1, "a", "b"));
  data += EncodeLogRecord(Edit(3, "c", "d"));
  auto parsed = ParseEditLog(data);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
}

TEST(EditLogParse, PayloadRoundTrip) {
  LogRecord r = Edit(9, std::string("\0x\xff", 3), "", "id");
  r.type = LogRecordType::kRestore;
  r.snapshot = "snap-9.bin";
  r.unrelated = {"nq question: who wrote it", "", "caf\xc3\xa9"};
  auto back = DecodeLogPayload(EncodeLogPayload(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(DecodeLogPayload(EncodeLogPayload(r) + "x").ok());
  EXPECT_FALSE(DecodeLogPayload("").ok());
}


// The exported limits are the reader's: a writer that checks them writes only records the reader takes.
TEST(EditLogParse, ExportedLimitsAreTheReadersLimits) {
  LogRecord r = Edit(1, "Who wrote it?", "Anna", "req-1");
  r.unrelated.assign(kMaxUnrelatedPrompts, "unrelated");
  r.subject = "it";
  r.paraphrases.assign(kMaxParaphrases, "Who is the author?");
  size_t strings = r.question.size() + r.answer.size() + r.request_id.size() + r.snapshot.size() + r.subject.size();
  for (const auto& u : r.unrelated) strings += u.size();
  for (const auto& p : r.paraphrases) strings += p.size();
  const std::string payload = EncodeLogPayload(r);
  EXPECT_EQ(payload.size(),
            kPayloadFixedBytes + (5 + r.unrelated.size() + r.paraphrases.size()) * kPayloadBytesPerString + strings);
  EXPECT_TRUE(DecodeLogPayload(payload).ok());
  LogRecord more = r;
  more.unrelated.push_back("one too many");
  auto over = DecodeLogPayload(EncodeLogPayload(more));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kDataLoss);
  more = r;
  more.paraphrases.push_back("one too many");
  over = DecodeLogPayload(EncodeLogPayload(more));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kDataLoss);
}

// Format 3 carries the scope keys and retracts; format 2 records (written before it) still read.
TEST(EditLogParse, RetractAndScopeKeysRoundTripAndFormat2StillReads) {
  LogRecord e = Edit(1, "The mother of Leo DiCaprio is", "Anna", "req-1");
  e.subject = "Leo DiCaprio";
  e.paraphrases = {"Who is Leo DiCaprio's mother?"};
  LogRecord x;
  x.type = LogRecordType::kRetract;
  x.version = 2;
  x.retracted_version = 1;
  x.question = "Who is Leo DiCaprio's mother?";
  x.request_id = "req-2";
  for (const LogRecord& r : {e, x}) {
    auto back = DecodeLogPayload(EncodeLogPayload(r));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, r);
  }
  // A format-2 payload: the format byte 2 and no fields after the unrelated prompts.
  LogRecord old = Edit(1, "Who wrote it?", "Anna", "req-1");
  std::string payload = EncodeLogPayload(old);
  payload[0] = 2;
  payload.resize(payload.size() - (kPayloadBytesPerString + 4 + 8));  // empty subject, no paraphrases, u64
  auto back = DecodeLogPayload(payload);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, old);
}

}  // namespace
}  // namespace moke::storage
