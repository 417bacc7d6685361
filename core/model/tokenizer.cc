#include "core/model/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace moke {
namespace {

// The SentencePiece shim (sentencepiece_shim.cc), opened once per process.
struct Shim {
  void* (*load)(const char*, char*, size_t) = nullptr;
  void (*free_sp)(void*) = nullptr;
  size_t (*encode)(void*, const char*, size_t, int*, size_t) = nullptr;
  char* (*decode)(void*, const int*, size_t, size_t*) = nullptr;
  int (*info)(void*, int) = nullptr;
  int (*byte)(void*, int) = nullptr;
  std::string error;
};

std::string ExeDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

const Shim& GetShim() {
  static Shim shim;
  static std::once_flag once;
  std::call_once(once, [] {
    // Search order: $MOKE_SPM_SHIM, beside the executable, the build tree, the install prefix.
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("MOKE_SPM_SHIM")) candidates.push_back(env);
    candidates.push_back(ExeDir() + "/libmoke_spm.so");
    candidates.push_back(ExeDir() + "/../lib/libmoke_spm.so");
    candidates.push_back(MOKE_SPM_SHIM_BUILD_PATH);
    void* handle = nullptr;
    for (const auto& c : candidates) {
      handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle != nullptr) break;
    }
    if (handle == nullptr) {
      shim.error = "cannot open libmoke_spm.so (looked beside the executable and in " MOKE_SPM_SHIM_BUILD_PATH
                   "; set MOKE_SPM_SHIM)";
      return;
    }
    shim.load = reinterpret_cast<decltype(shim.load)>(dlsym(handle, "moke_spm_load"));
    shim.free_sp = reinterpret_cast<decltype(shim.free_sp)>(dlsym(handle, "moke_spm_free"));
    shim.encode = reinterpret_cast<decltype(shim.encode)>(dlsym(handle, "moke_spm_encode"));
    shim.decode = reinterpret_cast<decltype(shim.decode)>(dlsym(handle, "moke_spm_decode"));
    shim.info = reinterpret_cast<decltype(shim.info)>(dlsym(handle, "moke_spm_info"));
    shim.byte = reinterpret_cast<decltype(shim.byte)>(dlsym(handle, "moke_spm_byte"));
    if (!shim.load || !shim.free_sp || !shim.encode || !shim.decode || !shim.info || !shim.byte) {
      shim.error = "libmoke_spm.so lacks its entry points";
      shim.load = nullptr;
    }
  });
  return shim;
}

}  // namespace

struct Tokenizer::Impl {
  void* sp = nullptr;
  int vocab = 0, bos = 1, eos = 2;
  std::vector<int> byte_of;  // per id: the byte of a byte-fallback piece, -1 otherwise
  ~Impl() {
    if (sp) GetShim().free_sp(sp);
  }
};

Tokenizer::Tokenizer() : impl_(new Impl) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::Load(const std::string& path, std::string* error) {
  const Shim& shim = GetShim();
  if (shim.load == nullptr) {
    *error = shim.error;
    return nullptr;
  }
  if (!std::filesystem::exists(path)) {
    *error = path + ": tokenizer model not found";
    return nullptr;
  }
  char err[512] = {0};
  void* sp = shim.load(path.c_str(), err, sizeof(err));
  if (sp == nullptr) {
    *error = path + ": cannot load SentencePiece model: " + err;
    return nullptr;
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->impl_->sp = sp;
  t->impl_->vocab = shim.info(sp, 0);
  t->impl_->bos = shim.info(sp, 1);
  t->impl_->eos = shim.info(sp, 2);
  t->impl_->byte_of.assign(static_cast<size_t>(std::max(t->impl_->vocab, 0)), -1);
  for (int id = 0; id < t->impl_->vocab; ++id) t->impl_->byte_of[id] = shim.byte(sp, id);
  return t;
}

std::vector<int> Tokenizer::Encode(const std::string& text) const {
  std::vector<int> ids(text.size() + 8);
  size_t n = GetShim().encode(impl_->sp, text.data(), text.size(), ids.data(), ids.size());
  if (n > ids.size()) {
    ids.resize(n);
    n = GetShim().encode(impl_->sp, text.data(), text.size(), ids.data(), ids.size());
  }
  ids.resize(n);
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int>& ids) const {
  size_t len = 0;
  char* buf = GetShim().decode(impl_->sp, ids.data(), ids.size(), &len);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

int Tokenizer::vocab_size() const { return impl_->vocab; }
int Tokenizer::ByteOf(int id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->byte_of.size() ? impl_->byte_of[id] : -1;
}
int Tokenizer::bos_id() const { return impl_->bos; }
int Tokenizer::eos_id() const { return impl_->eos; }

}  // namespace moke
