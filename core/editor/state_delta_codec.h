// The wire form of a knowledge-state delta (state_delta.h): what a follower needs to turn the published
// state it holds into the editor's newer one, as bytes — the changed experts' masked entries, the router,
// the thresholds and the fact gate's keys; never a retraining. A "full" delta (from nothing) is the whole
// state, with the model's identity and the editor's settings, so that a follower can check it holds the
// same model and answer exactly as the editor does.
//
// Format (all integers little-endian):
//   "MOKEDLTA"  u32 format (1)  u8 full  u64 from_version  u64 version
//   full only:  model identity (6 x i64/u8/u32, see WireModelIdentity), string options_json
//   u32 num_experts   u32 n, n x expert { u32 index, tensor bits, tensor values }
//   u32 n, n x f64 thresholds
//   u8 has_router [tensor router_w, tensor router_b]
//   u32 n, n x u64 removed fact versions   u32 n, n x fact (see WireFact)
//   u32 CRC-32C of every byte before it
// A string is u32 length + bytes; a tensor is u8 dtype, u8 rank, rank x i64 dims, then the raw elements.
// The decoder trusts no size: every count and length is checked against the bytes that remain, shapes
// against their element counts; any inconsistency is DATA_LOSS. No LibTorch here, so it can be fuzzed
// alone (tests/fuzz/state_delta_fuzz.cc); the checks against the model are ApplyStateDelta's.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace moke {

enum class WireDtype : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kU8 = 3 };
// Bytes per element (0 for an unknown code).
int WireDtypeSize(uint8_t dtype);

struct WireTensor {
  uint8_t dtype = 0;  // WireDtype
  std::vector<int64_t> shape;
  std::string bytes;  // product(shape) x WireDtypeSize(dtype), row-major, little-endian
  bool operator==(const WireTensor&) const = default;
};

struct WireModelIdentity {
  int64_t d_model = 0, d_ff = 0;  // the edit layer's down-projection [d_model, d_ff]
  int64_t layer = 0, num_layers = 0, vocab = 0;
  uint8_t dtype = 0;       // the model's (WireDtype): the experts' values are stored in it
  uint32_t w_org_crc = 0;  // CRC-32C of the edit layer's original down-projection as float32
  bool operator==(const WireModelIdentity&) const = default;
};

struct WireExpert {
  uint32_t index = 0;
  WireTensor bits;    // [ceil(D * F / 8)] u8, the mask (masked_tau.h's layout)
  WireTensor values;  // [nnz] in the model's dtype
  bool operator==(const WireExpert&) const = default;
};

struct WireRelation {
  std::vector<std::string> words;
  WireTensor key;  // [F]
  bool operator==(const WireRelation&) const = default;
};

// One live fact of the fact gate: its key (scope.h's FactKey) and what the published state keeps with it.
struct WireFact {
  uint64_t version = 0;
  int32_t expert = -1;
  int64_t answer_tokens = 0;
  std::string question, subject;
  std::vector<std::string> names;
  std::vector<std::vector<uint32_t>> name_trigrams;
  std::vector<WireRelation> relations;
  std::vector<uint32_t> question_trigrams;
  bool operator==(const WireFact&) const = default;
};

struct StateDelta {
  bool full = false;          // from nothing: every expert and fact follows
  uint64_t from_version = 0;  // the version it applies to (ignored when full)
  uint64_t version = 0;       // the version it makes
  // Full only.
  WireModelIdentity model;
  std::string options_json;  // the editor's settings that decide answers (not the model folder or device)
  // Always.
  uint32_t num_experts = 0;         // after the delta
  std::vector<WireExpert> experts;  // the changed and new experts, ascending index
  std::vector<double> thresholds;   // per expert, whole
  bool has_router = false;
  WireTensor router_w, router_b;          // [K, F], [K] float32, whole
  std::vector<uint64_t> removed_facts;    // by version
  std::vector<WireFact> added_facts;      // ascending version
  bool operator==(const StateDelta&) const = default;
};

std::string EncodeStateDelta(const StateDelta& delta);
// DATA_LOSS naming what is wrong; never reads past `bytes`.
absl::StatusOr<StateDelta> DecodeStateDelta(std::string_view bytes);

}  // namespace moke
