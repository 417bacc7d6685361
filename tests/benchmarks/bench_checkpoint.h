// The checkpoint a benchmark runs on: a folder given with --model, or one written now from a named shape
// (tools/make_checkpoint) into a temporary folder that is removed when the BenchCheckpoint goes.
//
// Thread-safety: a plain value owned by the benchmark's main thread.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "tools/make_checkpoint/checkpoint_maker.h"

namespace moke {

class BenchCheckpoint {
 public:
  // `model` when not empty; else `shape` (with `layers` > 0 replacing its layer count) written for
  // `device` with `tokenizer` (empty: the shared LLaMA-2 one) under a name starting with `tag`.
  static absl::StatusOr<BenchCheckpoint> Make(const std::string& model, const std::string& shape, int layers,
                                              const std::string& device, const std::string& tokenizer,
                                              const std::string& tag) {
    BenchCheckpoint c;
    if (!model.empty()) {
      c.dir_ = model;
      return c;
    }
    auto s = tools::ShapeByName(shape);
    if (!s.ok()) return s.status();
    tools::MakeOptions mo;
    mo.shape = *s;
    if (layers > 0) mo.shape.num_layers = layers;
    c.temp_ = (std::filesystem::temp_directory_path() / (tag + "_" + std::to_string(::getpid()))).string();
    mo.out_dir = c.temp_;
    mo.for_device = device == "cpu" ? "cpu" : "cuda";
    mo.tokenizer_model =
        !tokenizer.empty() ? tokenizer : std::string(MOKE_SHARED_DIR) + "/models/llama2-tokenizer/tokenizer.model";
    auto st = tools::MakeCheckpoint(mo);
    if (!st.ok()) return st.status();
    c.parameters_ = st->parameters;
    c.seconds_ = st->seconds;
    c.dir_ = c.temp_;
    return c;
  }

  BenchCheckpoint(BenchCheckpoint&& o) noexcept
      : dir_(std::move(o.dir_)), temp_(std::move(o.temp_)), parameters_(o.parameters_), seconds_(o.seconds_) {
    o.temp_.clear();
  }
  BenchCheckpoint& operator=(BenchCheckpoint&&) = delete;
  ~BenchCheckpoint() {
    if (!temp_.empty()) std::filesystem::remove_all(temp_);
  }

  const std::string& dir() const { return dir_; }
  bool written() const { return !temp_.empty(); }
  int64_t parameters() const { return parameters_; }  // when written
  double seconds() const { return seconds_; }          // when written

 private:
  BenchCheckpoint() = default;
  std::string dir_, temp_;
  int64_t parameters_ = 0;
  double seconds_ = 0;
};

}  // namespace moke
