#include "core/editor/activations.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace moke {

PromptActivations ActivationsOf(const LlamaModel& model, int64_t layer, const std::string& text) {
  return ActivationsOf(model, layer, model.EncodePrompt(text));
}

PromptActivations ActivationsOf(const LlamaModel& model, int64_t layer, const std::vector<int64_t>& ids) {
  at::NoGradGuard no_grad;
  PromptActivations p;
  p.ids = ids;
  p.a = model.RunToDownProj(at::tensor(ids, model.id_options()).unsqueeze(0), layer).a.to(at::kFloat);
  return p;
}

at::Tensor PromptTokenMask(const at::Tensor& a) {
  at::Tensor mask = at::ones({1, a.size(1)}, at::TensorOptions().dtype(at::kFloat).device(a.device()));
  if (a.size(1) > 1) mask.index_put_({0, 0}, 0.0);
  return mask;
}

PaddedActivations PadActivations(const std::vector<at::Tensor>& list) {
  int64_t t = 1;
  for (const auto& a : list) t = std::max<int64_t>(t, a.size(1));
  const int64_t n = static_cast<int64_t>(list.size());
  const int64_t f = list[0].size(2);
  auto opts = list[0].options();
  PaddedActivations out{at::zeros({n, t, f}, opts), at::zeros({n, t}, opts)};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = list[i].size(1);
    out.a[i].narrow(0, 0, len).copy_(list[i][0]);
    out.mask[i].narrow(0, 0, len).copy_(PromptTokenMask(list[i])[0]);
  }
  return out;
}

at::Tensor Fingerprint(const at::Tensor& a) {
  const int64_t t = a.size(1);
  at::Tensor pooled = t > 1 ? a[0].narrow(0, 1, t - 1).mean(0) : a[0].mean(0);
  pooled = pooled.to(at::kFloat);
  return pooled / pooled.norm().clamp_min(1e-12);
}

}  // namespace moke
