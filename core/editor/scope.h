// The scope decision: is a prompt about a fact the editor holds, and which one. One function decides it
// for Ask (is this question edited knowledge?) and for EditFact (does this edit re-edit a held fact?).
//
// Keys are L2-normalised fingerprints (see activations.h). A query is in the scope of its nearest held
// key when their cosine reaches `floor` and the key is nearer than every known unrelated prompt.
//
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace moke {

struct NearestEdit {
  int64_t index = -1;    // row of the nearest key (-1: no keys)
  double cosine = 0;     // its cosine with the query (0 when there are no keys)
  bool in_scope = false; // cosine >= floor and above every negative
};

// keys [N, F] (undefined or N = 0: nothing held), negatives [P, F] (undefined or P = 0: none known),
// query [F]; all L2-normalised.
NearestEdit NearestHeldEdit(const at::Tensor& keys, const at::Tensor& negatives, double floor, const at::Tensor& query);

}  // namespace moke
