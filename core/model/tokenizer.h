// SentencePiece tokenizer (LLaMA-2's and the small model's `tokenizer.model`).
// This header uses only the standard library on purpose: SentencePiece's header and Abseil's cannot
// share a translation unit (string_view ambiguity), so tokenizer.cc is the only file that sees it.
//
// Thread-safety: immutable after Load; Encode/Decode are safe from many threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace moke {

class Tokenizer {
 public:
  // Loads a SentencePiece model file. On failure returns null and sets *error.
  static std::unique_ptr<Tokenizer> Load(const std::string& path, std::string* error);
  ~Tokenizer();

  // Token ids of `text` with SentencePiece's dummy prefix, without BOS.
  std::vector<int> Encode(const std::string& text) const;
  std::string Decode(const std::vector<int>& ids) const;
  int vocab_size() const;
  // The byte a byte-fallback piece stands for (0..255), or -1 for any other id.
  int ByteOf(int id) const;
  int bos_id() const;
  int eos_id() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moke
