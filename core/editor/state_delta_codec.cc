#include "core/editor/state_delta_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/storage/crc32c.h"

namespace moke {

namespace {

constexpr char kMagic[8] = {'M', 'O', 'K', 'E', 'D', 'L', 'T', 'A'};
constexpr uint32_t kFormat = 1;
constexpr int kMaxRank = 4;
constexpr int64_t kMaxDim = int64_t{1} << 40;

// ---- writing ----

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v) {
    uint64_t u;
    std::memcpy(&u, &v, 8);
    U64(u);
  }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void Strings(const std::vector<std::string>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) Str(s);
  }
  void U32s(const std::vector<uint32_t>& v) {
    U32(static_cast<uint32_t>(v.size()));
    for (uint32_t x : v) U32(x);
  }
  void Tensor(const WireTensor& t) {
    U8(t.dtype);
    U8(static_cast<uint8_t>(t.shape.size()));
    for (int64_t d : t.shape) I64(d);
    out_ += t.bytes;  // the element count follows from the shape
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

// ---- reading: every read checks the bytes that remain; the first failure sticks ----

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t left() const { return in_.size() - at_; }
  const std::string& error() const { return error_; }
  void Fail(std::string why) {
    if (ok_) error_ = std::move(why);
    ok_ = false;
  }

  uint64_t Le(int n, const char* what) {
    if (!Need(n, what)) return 0;
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in_[at_ + i]);
    at_ += n;
    return v;
  }
  uint8_t U8(const char* what) { return static_cast<uint8_t>(Le(1, what)); }
  uint32_t U32(const char* what) { return static_cast<uint32_t>(Le(4, what)); }
  uint64_t U64(const char* what) { return Le(8, what); }
  int64_t I64(const char* what) { return static_cast<int64_t>(Le(8, what)); }
  double F64(const char* what) {
    const uint64_t u = U64(what);
    double v;
    std::memcpy(&v, &u, 8);
    return v;
  }
  bool Bool(const char* what) {
    const uint8_t v = U8(what);
    if (v > 1) Fail(absl::StrCat(what, ": not 0 or 1"));
    return v == 1;
  }
  std::string Str(const char* what) {
    const uint32_t n = U32(what);
    if (!Need(n, what)) return {};
    std::string s(in_.substr(at_, n));
    at_ += n;
    return s;
  }
  // A count of items that take at least `min_bytes` each: more than the bytes left can hold is corrupt.
  uint32_t Count(size_t min_bytes, const char* what) {
    const uint32_t n = U32(what);
    if (ok_ && static_cast<uint64_t>(n) * min_bytes > left()) {
      Fail(absl::StrCat(what, ": ", n, " items do not fit the ", left(), " bytes left"));
      return 0;
    }
    return ok_ ? n : 0;
  }
  std::vector<std::string> Strings(const char* what) {
    std::vector<std::string> v;
    for (uint32_t i = 0, n = Count(4, what); i < n && ok_; ++i) v.push_back(Str(what));
    return v;
  }
  std::vector<uint32_t> U32s(const char* what) {
    std::vector<uint32_t> v(Count(4, what));
    for (auto& x : v) x = U32(what);
    return v;
  }
  WireTensor Tensor(const char* what) {
    WireTensor t;
    t.dtype = U8(what);
    const int size = WireDtypeSize(t.dtype);
    const uint8_t rank = U8(what);
    if (!ok_) return t;
    if (size == 0) {
      Fail(absl::StrCat(what, ": unknown dtype ", t.dtype));
      return t;
    }
    if (rank > kMaxRank) {
      Fail(absl::StrCat(what, ": rank ", rank));
      return t;
    }
    uint64_t elems = 1;
    for (int i = 0; i < rank; ++i) {
      const int64_t d = I64(what);
      if (!ok_) return t;
      if (d < 0 || d > kMaxDim) {
        Fail(absl::StrCat(what, ": bad dimension ", d));
        return t;
      }
      t.shape.push_back(d);
      elems *= static_cast<uint64_t>(d);
      if (elems > static_cast<uint64_t>(kMaxDim)) {
        Fail(absl::StrCat(what, ": too many elements"));
        return t;
      }
    }
    const uint64_t n = elems * static_cast<uint64_t>(size);
    if (!Need(n, what)) return t;
    t.bytes.assign(in_.data() + at_, n);
    at_ += n;
    return t;
  }

 private:
  bool Need(uint64_t n, const char* what) {
    if (!ok_) return false;
    if (n > left()) {
      Fail(absl::StrCat(what, ": needs ", n, " bytes, ", left(), " left"));
      return false;
    }
    return true;
  }

  std::string_view in_;
  size_t at_ = 0;
  bool ok_ = true;
  std::string error_;
};

void WriteFact(Writer& w, const WireFact& f) {
  w.U64(f.version);
  w.U32(static_cast<uint32_t>(f.expert));
  w.I64(f.answer_tokens);
  w.Str(f.question);
  w.Str(f.subject);
  w.Strings(f.names);
  w.U32(static_cast<uint32_t>(f.name_trigrams.size()));
  for (const auto& t : f.name_trigrams) w.U32s(t);
  w.U32(static_cast<uint32_t>(f.relations.size()));
  for (const auto& r : f.relations) {
    w.Strings(r.words);
    w.Tensor(r.key);
  }
  w.U32s(f.question_trigrams);
}

WireFact ReadFact(Reader& r) {
  WireFact f;
  f.version = r.U64("fact version");
  f.expert = static_cast<int32_t>(r.U32("fact expert"));
  f.answer_tokens = r.I64("fact answer tokens");
  f.question = r.Str("fact question");
  f.subject = r.Str("fact subject");
  f.names = r.Strings("fact names");
  for (uint32_t i = 0, n = r.Count(4, "fact name trigrams"); i < n && r.ok(); ++i) {
    f.name_trigrams.push_back(r.U32s("fact name trigrams"));
  }
  for (uint32_t i = 0, n = r.Count(4 + 2, "fact relations"); i < n && r.ok(); ++i) {
    WireRelation rel;
    rel.words = r.Strings("relation words");
    rel.key = r.Tensor("relation key");
    f.relations.push_back(std::move(rel));
  }
  f.question_trigrams = r.U32s("fact question trigrams");
  return f;
}

}  // namespace

int WireDtypeSize(uint8_t dtype) {
  switch (static_cast<WireDtype>(dtype)) {
    case WireDtype::kF32: return 4;
    case WireDtype::kBF16: return 2;
    case WireDtype::kF16: return 2;
    case WireDtype::kU8: return 1;
  }
  return 0;
}

std::string EncodeStateDelta(const StateDelta& d) {
  Writer w;
  w.out().append(kMagic, 8);
  w.U32(kFormat);
  w.U8(d.full ? 1 : 0);
  w.U64(d.from_version);
  w.U64(d.version);
  if (d.full) {
    w.I64(d.model.d_model);
    w.I64(d.model.d_ff);
    w.I64(d.model.layer);
    w.I64(d.model.num_layers);
    w.I64(d.model.vocab);
    w.U8(d.model.dtype);
    w.U32(d.model.w_org_crc);
    w.Str(d.options_json);
  }
  w.U32(d.num_experts);
  w.U32(static_cast<uint32_t>(d.experts.size()));
  for (const auto& e : d.experts) {
    w.U32(e.index);
    w.Tensor(e.bits);
    w.Tensor(e.values);
  }
  w.U32(static_cast<uint32_t>(d.thresholds.size()));
  for (double t : d.thresholds) w.F64(t);
  w.U8(d.has_router ? 1 : 0);
  if (d.has_router) {
    w.Tensor(d.router_w);
    w.Tensor(d.router_b);
  }
  w.U32(static_cast<uint32_t>(d.removed_facts.size()));
  for (uint64_t v : d.removed_facts) w.U64(v);
  w.U32(static_cast<uint32_t>(d.added_facts.size()));
  for (const auto& f : d.added_facts) WriteFact(w, f);
  w.U32(storage::Crc32c(w.out()));
  return std::move(w.out());
}

absl::StatusOr<StateDelta> DecodeStateDelta(std::string_view bytes) {
  auto loss = [](const std::string& why) { return absl::DataLossError(absl::StrCat("corrupt state delta: ", why)); };
  if (bytes.size() < 8 + 4 + 1 + 8 + 8 + 4) return loss("too short");
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) return loss("bad magic");
  const std::string_view body = bytes.substr(0, bytes.size() - 4);
  Reader tail(bytes.substr(bytes.size() - 4));
  if (tail.U32("crc") != storage::Crc32c(body)) return loss("checksum mismatch");
  Reader r(body.substr(8));
  const uint32_t format = r.U32("format");
  if (format != kFormat) return loss(absl::StrCat("unknown format ", format));
  StateDelta d;
  d.full = r.Bool("full");
  d.from_version = r.U64("from_version");
  d.version = r.U64("version");
  if (d.full) {
    d.model.d_model = r.I64("d_model");
    d.model.d_ff = r.I64("d_ff");
    d.model.layer = r.I64("layer");
    d.model.num_layers = r.I64("num_layers");
    d.model.vocab = r.I64("vocab");
    d.model.dtype = r.U8("model dtype");
    d.model.w_org_crc = r.U32("w_org crc");
    d.options_json = r.Str("options");
  }
  d.num_experts = r.U32("num_experts");
  for (uint32_t i = 0, n = r.Count(4 + 2 * 2, "experts"); i < n && r.ok(); ++i) {
    WireExpert e;
    e.index = r.U32("expert index");
    e.bits = r.Tensor("expert bits");
    e.values = r.Tensor("expert values");
    d.experts.push_back(std::move(e));
  }
  d.thresholds.resize(r.Count(8, "thresholds"));
  for (double& t : d.thresholds) t = r.F64("threshold");
  d.has_router = r.Bool("has_router");
  if (d.has_router) {
    d.router_w = r.Tensor("router_w");
    d.router_b = r.Tensor("router_b");
  }
  d.removed_facts.resize(r.Count(8, "removed facts"));
  for (uint64_t& v : d.removed_facts) v = r.U64("removed fact");
  for (uint32_t i = 0, n = r.Count(8 + 4 + 8 + 4 * 6, "added facts"); i < n && r.ok(); ++i) {
    d.added_facts.push_back(ReadFact(r));
  }
  if (!r.ok()) return loss(r.error());
  if (r.left() != 0) return loss(absl::StrCat(r.left(), " bytes after the end"));
  if (d.version < d.from_version && !d.full) return loss("version below from_version");
  return d;
}

}  // namespace moke
