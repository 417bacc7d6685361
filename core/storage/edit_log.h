// The edit log: an append-only file of checksummed records, the durable history of the service.
//
// File layout: an 8-byte file header "MOKELOG\1", then records. Each record is a 16-byte header
//   u32 magic "MKLR" | u32 payload length | u32 CRC-32C of the payload | u32 CRC-32C of the first 12 bytes
// followed by the payload (see EncodeLogPayload). All integers little-endian.
//
// Recovery rules (ParseEditLog): a torn tail is a file that ends inside its last record, which is what a
// crash during an append leaves: a prefix of the record (a verified header whose payload runs past the
// end of the file, or part of a header), perhaps followed by zero bytes. It is reported and ignored.
// Everything else that is not a valid record is corruption, wherever it is: a record header or a
// complete payload that fails its checksum (the last record included), or bytes that cannot start a
// record. Corruption is DATA_LOSS naming the byte offset; nothing is guessed or dropped.
//
// No gRPC, no LibTorch: plain C++ and Abseil, so the parser can be fuzzed alone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moke::storage {

enum class LogRecordType : uint8_t {
  kEdit = 1,      // an applied edit; edit_id = 1, 2, 3, ... in log order
  kRestore = 2,   // the state was replaced by snapshot `snapshot` (at `version`)
  kSnapshot = 3,  // snapshot `snapshot` holds the state after every earlier record (at `version`)
  kRetract = 4,   // the fact taught at `retracted_version` was forgotten (the state's new `version`)
};

struct LogRecord {
  LogRecordType type = LogRecordType::kEdit;
  uint64_t edit_id = 0;     // kEdit only (1-based position among edit records)
  uint64_t version = 0;     // kEdit: the version containing the edit; others: the state's version
  int64_t unix_micros = 0;  // when it was written
  // kEdit only.
  std::string question;
  std::string answer;
  std::string request_id;   // may be empty
  std::vector<std::string> unrelated;  // the edit's unrelated prompts (x_o), replayed with it
  std::string subject;                 // as the request gave it (empty: the editor found one)
  std::vector<std::string> paraphrases;
  int32_t expert = -1;
  bool new_concept = false;
  int32_t iterations = 0;
  double loss = 0;
  double apply_seconds = 0;
  // kRestore / kSnapshot: the snapshot's file name (e.g. "snap-12.bin").
  std::string snapshot;
  // kRetract: the version whose edit taught the forgotten fact (question and request_id: the retract's).
  uint64_t retracted_version = 0;

  bool operator==(const LogRecord&) const = default;
};

inline constexpr char kLogFileMagic[8] = {'M', 'O', 'K', 'E', 'L', 'O', 'G', 1};
inline constexpr size_t kLogFileHeaderSize = 8;
inline constexpr size_t kRecordHeaderSize = 16;
inline constexpr uint32_t kRecordMagic = 0x524C4B4Du;  // "MKLR" read little-endian

// Limits the reader enforces (ParseEditLog refuses a record past them, and with it the whole log). A
// writer must refuse content that would break them BEFORE applying it: the server validates requests
// against them (server/request_validation.h).
inline constexpr uint32_t kMaxPayloadBytes = 16u << 20;
inline constexpr uint32_t kMaxUnrelatedPrompts = 1024;  // LogRecord::unrelated entries
inline constexpr uint32_t kMaxParaphrases = 16;         // LogRecord::paraphrases entries
// A payload's size: kPayloadFixedBytes plus, for every string field (question, answer, request_id,
// snapshot, subject, each unrelated prompt, each paraphrase), kPayloadBytesPerString plus its length.
inline constexpr size_t kPayloadFixedBytes = 67;
inline constexpr size_t kPayloadBytesPerString = 4;

// The payload format written (its first byte). 3: format 2 plus subject, paraphrases and
// retracted_version. Format 2 payloads still read.
inline constexpr uint8_t kPayloadFormat = 3;

// Payload encoding of one record (no header).
std::string EncodeLogPayload(const LogRecord& r);
absl::StatusOr<LogRecord> DecodeLogPayload(std::string_view payload);
// A whole framed record (header + payload).
std::string EncodeLogRecord(const LogRecord& r);

struct ParsedLog {
  std::vector<LogRecord> records;
  uint64_t valid_bytes = 0;       // file prefix made of the header and whole valid records
  uint64_t torn_tail_bytes = 0;   // ignored bytes after it (a torn last append)
};

// Parses a whole log file's content. DATA_LOSS on corruption (see the recovery rules above), a foreign
// file header, a record with a valid checksum but an undecodable payload, or edit ids that are not
// 1, 2, 3, ...
// An empty input (or a torn file header) is an empty log.
absl::StatusOr<ParsedLog> ParseEditLog(std::string_view data);

// The open log file. Not thread-safe: one owner (the editor thread) appends.
class EditLog {
 public:
  // Opens (creating if missing) the log at `path` and returns the records it holds in `records`.
  // A torn tail is logged as a warning and truncated away so that new records follow valid ones.
  // Corruption is DATA_LOSS naming the file and the byte offset, and the file is left untouched: the
  // process must not start on it (an operator decides).
  static absl::StatusOr<std::unique_ptr<EditLog>> Open(const std::string& path, std::vector<LogRecord>* records);
  ~EditLog();
  EditLog(const EditLog&) = delete;
  EditLog& operator=(const EditLog&) = delete;

  // Appends one record and fsyncs it. On error the file is truncated back to its previous size (best
  // effort) and the error returned; the caller must treat the log as failed.
  absl::Status Append(const LogRecord& record);
  uint64_t size_bytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  EditLog(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_;
  uint64_t size_;
};

// fsyncs a directory (after creating or renaming a file in it).
absl::Status SyncDir(const std::string& dir);

}  // namespace moke::storage
