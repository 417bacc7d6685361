// A C shim over Debian's libsentencepiece, built as its own shared library and opened by tokenizer.cc
// with dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why: libsentencepiece.so bundles and exports its own protobuf 3.14 runtime. Loaded into the global
// symbol scope beside LibTorch's libprotobuf 3.21, one of the two copies always binds to the other's
// symbols and the process aborts at start-up ("compiled against version 3.14.0"). Opened locally with
// deep binding, SentencePiece keeps its protobuf to itself.
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {

__attribute__((visibility("default"))) void* moke_spm_load(const char* path, char* err, size_t err_len) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto status = sp->Load(path);
  if (!status.ok()) {
    std::snprintf(err, err_len, "%s", status.ToString().c_str());
    delete sp;
    return nullptr;
  }
  return sp;
}

__attribute__((visibility("default"))) void moke_spm_free(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// Writes up to `cap` ids into `out`; returns the number of ids (which may exceed cap: call again).
__attribute__((visibility("default"))) size_t moke_spm_encode(void* sp, const char* text, size_t len, int* out,
                                                              size_t cap) {
  std::vector<int> ids;
  static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Encode(std::string(text, len), &ids);
  std::memcpy(out, ids.data(), sizeof(int) * std::min(cap, ids.size()));
  return ids.size();
}

// Returns a malloc'd NUL-terminated string; the caller frees it with free().
__attribute__((visibility("default"))) char* moke_spm_decode(void* sp, const int* ids, size_t n, size_t* out_len) {
  std::string text;
  static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Decode(std::vector<int>(ids, ids + n), &text);
  char* buf = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  *out_len = text.size();
  return buf;
}

__attribute__((visibility("default"))) int moke_spm_info(void* sp, int what) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(sp);
  switch (what) {
    case 0: return p->GetPieceSize();
    case 1: return p->bos_id();
    case 2: return p->eos_id();
  }
  return -1;
}

// The byte a byte-fallback piece ("<0xC3>") stands for, or -1 for any other piece.
__attribute__((visibility("default"))) int moke_spm_byte(void* sp, int id) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(sp);
  if (id < 0 || id >= p->GetPieceSize() || !p->IsByte(id)) return -1;
  const std::string piece = p->IdToPiece(id);
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  return static_cast<int>(std::strtol(piece.substr(3, 2).c_str(), nullptr, 16));
}

}  // extern "C"
