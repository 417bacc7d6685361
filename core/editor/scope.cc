#include "core/editor/scope.h"

#include <ATen/ATen.h>

namespace moke {

NearestEdit NearestHeldEdit(const at::Tensor& keys, const at::Tensor& negatives, double floor, const at::Tensor& query) {
  NearestEdit out;
  if (!keys.defined() || keys.size(0) == 0) return out;
  at::Tensor cos = at::mv(keys, query);
  out.index = cos.argmax().item<int64_t>();
  out.cosine = cos[out.index].item<double>();
  const double nearest_negative =
      negatives.defined() && negatives.size(0) > 0 ? at::mv(negatives, query).max().item<double>() : -1.0;
  out.in_scope = out.cosine >= floor && out.cosine > nearest_negative;
  return out;
}

}  // namespace moke
