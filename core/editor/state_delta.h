// Followers (docs/scaling.md): the difference between two published knowledge versions as bytes, and
// the version it makes when applied. Published states are immutable and an expert is never written in
// place (masked_tau.h), so "changed" is exact and cheap: an expert whose stored tensors are not the very
// ones the older state holds, a fact key that is not the same object (or not at the same version). The
// router and the thresholds are small and go whole. A delta from nothing is the whole state (what a
// follower starts from, and what follows a restore just as well). Applying a delta never trains: the
// follower answers exactly as the editor did at that version (the same tensors, keys and settings).
//
// Wire format and the bounds checks on untrusted bytes: state_delta_codec.h.
//
// Thread-safety: free functions over immutable published states; safe from any thread. No exception
// leaves them (LibTorch errors become INTERNAL).
//
// This header uses only the standard library and Abseil (server/ includes it without LibTorch).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/editor/editor.h"

namespace moke {

// The bytes that turn `from` into `to`; `from` null: the whole of `to` (a full delta, with the model's
// identity and the settings that decide answers).
absl::StatusOr<std::string> DiffStates(const KnowledgeView* from, const KnowledgeView& to);

// The state `bytes` makes from `prev`. A full delta replaces everything but the model (checked: the same
// shape, edit layer, dtype and original edit-layer weights, else FAILED_PRECONDITION) and takes the
// editor's settings (the local model folder, device, dtype and threads stay). Otherwise the delta must
// start at prev's version (FAILED_PRECONDITION). Corrupt or inconsistent bytes: DATA_LOSS; `prev` is
// never changed.
absl::StatusOr<std::shared_ptr<const KnowledgeView>> ApplyStateDelta(const KnowledgeView& prev, std::string_view bytes);

}  // namespace moke
