// The editor's state in a snapshot file (the file format itself is snapshot_codec.h): the experts (each
// its mask's bits "mask.i" and its values on the mask "values.i", f32; snapshots with dense "tau.i" from
// before still load), the router, thresholds, the replay buffer, the edit history, the supplied unrelated
// prompts and the generator, with a JSON description.
//
// Thread-safety: free functions; the state belongs to the caller (the editor thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/editor/editor_state.h"
#include "core/editor/snapshot_codec.h"

namespace moke {

absl::StatusOr<SnapshotData> EncodeSnapshot(const EditorState& state);
// Replaces the state's experts, router, history, replay buffer, pool, generator and version with the
// snapshot's (the model and options stay). A snapshot made for another method, model shape, edit layer
// or bank size is FAILED_PRECONDITION; damaged content is DATA_LOSS; on error `state` is unchanged.
// `origin` names the file in messages.
absl::Status DecodeSnapshot(const SnapshotData& data, const std::string& origin, EditorState* state);
// The version a snapshot holds (DATA_LOSS when it has none).
absl::StatusOr<uint64_t> SnapshotVersionOf(const SnapshotData& data, const std::string& origin);

}  // namespace moke
