#include "core/editor/snapshot_codec.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moke {
namespace {

constexpr char kMagic[8] = {'M', 'O', 'K', 'E', 'S', 'N', 'A', 'P'};
constexpr uint32_t kFormat = 1;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint64_t Fnv1a64(const uint8_t* data, size_t size, uint64_t h) {
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

absl::Status WriteSnapshotFile(const std::string& path, const SnapshotData& data) {
  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  for (const auto& b : data.blobs) {
    table.push_back({{"name", b.name}, {"kind", b.kind}, {"shape", b.shape}, {"offset", offset}, {"bytes", b.bytes.size()}});
    offset += b.bytes.size();
  }
  nlohmann::json header = {{"meta", data.meta_json}, {"blobs", table}};
  const std::string h = header.dump();
  std::string out(kMagic, 8);
  PutU64(&out, kFormat);
  PutU64(&out, h.size());
  out += h;
  for (const auto& b : data.blobs) out += b.bytes;
  PutU64(&out, Fnv1a64(reinterpret_cast<const uint8_t*>(out.data()), out.size()));

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return absl::InternalError(absl::StrCat(tmp, ": write failed: ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return absl::InternalError(absl::StrCat(tmp, ": fsync failed"));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<SnapshotData> ParseSnapshot(const uint8_t* p, size_t size, const std::string& origin) {
  auto loss = [&](const std::string& why) { return absl::DataLossError(absl::StrCat(origin, ": corrupt snapshot: ", why)); };
  if (size < 8 + 8 + 8 + 8) return loss("too short");
  if (std::memcmp(p, kMagic, 8) != 0) return loss("bad magic");
  if (GetU64(p + size - 8) != Fnv1a64(p, size - 8)) return loss("checksum mismatch");
  if (GetU64(p + 8) != kFormat) return loss(absl::StrCat("unknown format ", GetU64(p + 8)));
  const uint64_t hlen = GetU64(p + 16);
  if (hlen > size - 32) return loss("header length beyond the file");
  nlohmann::json header = nlohmann::json::parse(p + 24, p + 24 + hlen, nullptr, false);
  if (header.is_discarded() || !header.is_object() || !header.contains("meta") || !header["meta"].is_string() ||
      !header.contains("blobs") || !header["blobs"].is_array()) {
    return loss("bad header");
  }
  SnapshotData out;
  out.meta_json = header["meta"].get<std::string>();
  const uint8_t* blobs = p + 24 + hlen;
  const uint64_t blob_bytes = size - 8 - 24 - hlen;
  for (const auto& b : header["blobs"]) {
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("kind") || !b["kind"].is_string() ||
        !b.contains("offset") || !b["offset"].is_number_unsigned() || !b.contains("bytes") ||
        !b["bytes"].is_number_unsigned() || !b.contains("shape") || !b["shape"].is_array()) {
      return loss("bad blob entry");
    }
    const uint64_t off = b["offset"].get<uint64_t>(), n = b["bytes"].get<uint64_t>();
    if (off > blob_bytes || n > blob_bytes - off) return loss(absl::StrCat("blob ", b["name"].get<std::string>(), " out of range"));
    SnapshotBlob blob;
    blob.name = b["name"].get<std::string>();
    blob.kind = b["kind"].get<std::string>();
    uint64_t elems = 1;
    for (const auto& d : b["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40)) return loss("bad shape");
      blob.shape.push_back(d.get<int64_t>());
      elems *= d.get<uint64_t>();
      if (elems > (1ull << 40)) return loss("bad shape");
    }
    const uint64_t want = blob.kind == "f32" ? elems * 4 : blob.kind == "bits" ? (elems + 7) / 8 : UINT64_MAX;
    if (want != n) return loss(absl::StrCat("blob ", blob.name, " has ", n, " bytes, expected ", want));
    blob.bytes.assign(reinterpret_cast<const char*>(blobs + off), n);
    out.blobs.push_back(std::move(blob));
  }
  return out;
}

absl::StatusOr<SnapshotData> ReadSnapshotFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open snapshot"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  return ParseSnapshot(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace moke
