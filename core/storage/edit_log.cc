#include "core/storage/edit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/storage/crc32c.h"
#include "spdlog/spdlog.h"

namespace moke::storage {
namespace {

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutF64(std::string* s, double d) {
  uint64_t v;
  std::memcpy(&v, &d, 8);
  PutU64(s, v);
}
void PutStr(std::string* s, const std::string& v) {
  PutU32(s, static_cast<uint32_t>(v.size()));
  s->append(v);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Bounds-checked reader over a payload.
class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  bool U8(uint8_t* v) {
    if (d_.size() - pos_ < 1) return false;
    *v = static_cast<uint8_t>(d_[pos_++]);
    return true;
  }
  bool U32(uint32_t* v) {
    if (d_.size() - pos_ < 4) return false;
    *v = GetU32(d_.data() + pos_);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    if (d_.size() - pos_ < 8) return false;
    *v = GetU64(d_.data() + pos_);
    pos_ += 8;
    return true;
  }
  bool F64(double* d) {
    uint64_t v;
    if (!U64(&v)) return false;
    std::memcpy(d, &v, 8);
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n;
    if (!U32(&n) || d_.size() - pos_ < n) return false;
    s->assign(d_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == d_.size(); }

 private:
  std::string_view d_;
  size_t pos_ = 0;
};

// What ReadFramed found at a position.
enum class Frame {
  kRecord,   // a whole record whose checksums hold
  kTorn,     // the file ends inside a record: a crash during its append
  kCorrupt,  // a complete record (or record header) that fails its checksum: damage, not a crash
};

// Reads one framed record at `pos` (pos < data.size()). kRecord: *payload and *next are set. Otherwise
// *why says what is wrong.
//
// A record is torn when the file ends inside it: what is left is a prefix of a record, perhaps followed
// by zero bytes (a file system's zero fill of an append it extended the file for but did not finish
// writing). That is: a header that checks out and a payload that runs past the end of the file, or a
// partial header (fewer than kRecordHeaderSize bytes before the zeros) whose bytes match the record
// magic as far as they go. Anything else that is not a valid record is corrupt: a full header that
// fails its checksum, bytes that cannot start a record, or a complete payload that fails its checksum.
// So damage inside the last record is refused like damage anywhere else.
Frame ReadFramed(std::string_view data, uint64_t pos, std::string_view* payload, uint64_t* next, std::string* why) {
  const uint64_t left = data.size() - pos;
  const char* h = data.data() + pos;
  if (left < kRecordHeaderSize || GetU32(h) != kRecordMagic || Crc32cExtend(0, h, 12) != GetU32(h + 12)) {
    const uint64_t end = data.find_last_not_of('\0') + 1;  // 0 when all bytes are zero (npos + 1)
    const uint64_t written = end > pos ? end - pos : 0;
    std::string magic;
    PutU32(&magic, kRecordMagic);
    if (written < kRecordHeaderSize && std::memcmp(h, magic.data(), std::min<uint64_t>(written, magic.size())) == 0) {
      return Frame::kTorn;
    }
    *why = written < kRecordHeaderSize ? absl::StrCat(written, " bytes that cannot start a record")
                                       : std::string("record header fails its checksum");
    return Frame::kCorrupt;
  }
  const uint32_t len = GetU32(h + 4);
  if (len > kMaxPayloadBytes) {
    *why = absl::StrCat("record header claims ", len, " payload bytes (the limit is ", kMaxPayloadBytes, ")");
    return Frame::kCorrupt;
  }
  if (left - kRecordHeaderSize < len) return Frame::kTorn;
  std::string_view p = data.substr(pos + kRecordHeaderSize, len);
  if (Crc32c(p) != GetU32(h + 8)) {
    *why = absl::StrCat("complete record of ", len, " payload bytes fails its checksum");
    return Frame::kCorrupt;
  }
  *payload = p;
  *next = pos + kRecordHeaderSize + len;
  return Frame::kRecord;
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

std::string EncodeLogPayload(const LogRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kPayloadFormat));
  s.push_back(static_cast<char>(r.type));
  PutU64(&s, r.edit_id);
  PutU64(&s, r.version);
  PutU64(&s, static_cast<uint64_t>(r.unix_micros));
  PutU32(&s, static_cast<uint32_t>(r.expert));
  s.push_back(r.new_concept ? 1 : 0);
  PutU32(&s, static_cast<uint32_t>(r.iterations));
  PutF64(&s, r.loss);
  PutF64(&s, r.apply_seconds);
  PutStr(&s, r.question);
  PutStr(&s, r.answer);
  PutStr(&s, r.request_id);
  PutStr(&s, r.snapshot);
  PutU32(&s, static_cast<uint32_t>(r.unrelated.size()));
  for (const auto& u : r.unrelated) PutStr(&s, u);
  PutStr(&s, r.subject);
  PutU32(&s, static_cast<uint32_t>(r.paraphrases.size()));
  for (const auto& p : r.paraphrases) PutStr(&s, p);
  PutU64(&s, r.retracted_version);
  return s;
}

absl::StatusOr<LogRecord> DecodeLogPayload(std::string_view payload) {
  Reader rd(payload);
  LogRecord r;
  uint8_t format = 0, type = 0, nc = 0;
  uint64_t micros = 0;
  uint32_t expert = 0, iters = 0;
  if (!rd.U8(&format) || format < 2 || format > kPayloadFormat) {
    return absl::DataLossError("edit log record: unknown payload format");
  }
  if (!rd.U8(&type) || type < 1 || type > 4) return absl::DataLossError("edit log record: unknown record type");
  r.type = static_cast<LogRecordType>(type);
  if (!rd.U64(&r.edit_id) || !rd.U64(&r.version) || !rd.U64(&micros) || !rd.U32(&expert) || !rd.U8(&nc) ||
      !rd.U32(&iters) || !rd.F64(&r.loss) || !rd.F64(&r.apply_seconds) || !rd.Str(&r.question) ||
      !rd.Str(&r.answer) || !rd.Str(&r.request_id) || !rd.Str(&r.snapshot) || nc > 1) {
    return absl::DataLossError("edit log record: malformed payload");
  }
  uint32_t n = 0;
  if (!rd.U32(&n) || n > kMaxUnrelatedPrompts) return absl::DataLossError("edit log record: malformed payload");
  r.unrelated.resize(n);
  for (auto& u : r.unrelated) {
    if (!rd.Str(&u)) return absl::DataLossError("edit log record: malformed payload");
  }
  if (format >= 3) {
    if (!rd.Str(&r.subject) || !rd.U32(&n) || n > kMaxParaphrases) {
      return absl::DataLossError("edit log record: malformed payload");
    }
    r.paraphrases.resize(n);
    for (auto& p : r.paraphrases) {
      if (!rd.Str(&p)) return absl::DataLossError("edit log record: malformed payload");
    }
    if (!rd.U64(&r.retracted_version)) return absl::DataLossError("edit log record: malformed payload");
  }
  if (!rd.done()) return absl::DataLossError("edit log record: malformed payload");
  r.unix_micros = static_cast<int64_t>(micros);
  r.expert = static_cast<int32_t>(expert);
  r.iterations = static_cast<int32_t>(iters);
  r.new_concept = nc == 1;
  return r;
}

std::string EncodeLogRecord(const LogRecord& r) {
  const std::string payload = EncodeLogPayload(r);
  std::string s;
  s.reserve(kRecordHeaderSize + payload.size());
  PutU32(&s, kRecordMagic);
  PutU32(&s, static_cast<uint32_t>(payload.size()));
  PutU32(&s, Crc32c(payload));
  PutU32(&s, Crc32cExtend(0, s.data(), 12));
  s.append(payload);
  return s;
}

absl::StatusOr<ParsedLog> ParseEditLog(std::string_view data) {
  ParsedLog out;
  const std::string_view magic(kLogFileMagic, kLogFileHeaderSize);
  if (data.size() < kLogFileHeaderSize) {
    if (magic.substr(0, data.size()) != data) return absl::DataLossError("not a moke edit log (bad file header)");
    out.torn_tail_bytes = data.size();  // torn file header: an empty log
    return out;
  }
  if (data.substr(0, kLogFileHeaderSize) != magic) return absl::DataLossError("not a moke edit log (bad file header)");
  uint64_t pos = kLogFileHeaderSize;
  uint64_t edits = 0;
  while (pos < data.size()) {
    std::string_view payload;
    uint64_t next = 0;
    std::string why;
    const Frame frame = ReadFramed(data, pos, &payload, &next, &why);
    if (frame == Frame::kCorrupt) {
      return absl::DataLossError(
          absl::StrCat("edit log corrupt at byte ", pos, " (after ", out.records.size(), " valid records): ", why));
    }
    if (frame == Frame::kTorn) {
      out.valid_bytes = pos;
      out.torn_tail_bytes = data.size() - pos;
      return out;
    }
    absl::StatusOr<LogRecord> r = DecodeLogPayload(payload);
    if (!r.ok()) return absl::DataLossError(absl::StrCat(r.status().message(), " at byte ", pos));
    if (r->type == LogRecordType::kEdit && r->edit_id != edits + 1) {
      return absl::DataLossError(absl::StrCat("edit log: edit id ", r->edit_id, " at byte ", pos, " where ", edits + 1,
                                              " was expected"));
    }
    if (r->type == LogRecordType::kEdit) ++edits;
    out.records.push_back(*std::move(r));
    pos = next;
  }
  out.valid_bytes = pos;
  return out;
}

absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EditLog>> EditLog::Open(const std::string& path, std::vector<LogRecord>* records) {
  records->clear();
  const bool existed = std::filesystem::exists(path);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open edit log", path);
  std::string data;
  {
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::pread(fd, buf, sizeof(buf), static_cast<off_t>(data.size()))) > 0) data.append(buf, n);
    if (n < 0) {
      ::close(fd);
      return Errno("read edit log", path);
    }
  }
  absl::StatusOr<ParsedLog> parsed = ParseEditLog(data);
  if (!parsed.ok()) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  uint64_t size = parsed->valid_bytes;
  if (parsed->torn_tail_bytes > 0) {
    spdlog::warn("edit log {}: ignoring a torn last record ({} bytes after byte {}); truncating it", path,
                 parsed->torn_tail_bytes, size);
  }
  if (size < kLogFileHeaderSize) {
    // New (or torn-header) file: write the header.
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, kLogFileMagic, kLogFileHeaderSize, 0) != kLogFileHeaderSize) {
      ::close(fd);
      return Errno("write edit log header", path);
    }
    size = kLogFileHeaderSize;
  } else if (size < data.size() && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    return Errno("truncate edit log", path);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return Errno("fsync edit log", path);
  }
  if (!existed) {
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    if (absl::Status s = SyncDir(dir); !s.ok()) {
      ::close(fd);
      return s;
    }
  }
  *records = std::move(parsed->records);
  return std::unique_ptr<EditLog>(new EditLog(path, fd, size));
}

EditLog::~EditLog() { ::close(fd_); }

absl::Status EditLog::Append(const LogRecord& record) {
  const std::string bytes = EncodeLogRecord(record);
  if (bytes.size() - kRecordHeaderSize > kMaxPayloadBytes) return absl::InvalidArgumentError("edit log record too large");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno("append to edit log", path_);
      (void)::ftruncate(fd_, static_cast<off_t>(size_));
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    absl::Status s = Errno("fdatasync edit log", path_);
    (void)::ftruncate(fd_, static_cast<off_t>(size_));
    return s;
  }
  size_ += bytes.size();
  return absl::OkStatus();
}

}  // namespace moke::storage
