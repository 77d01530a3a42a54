// In-place random and constant initialisation (Tensor.uniform_/normal_, torch.nn.init). Entry points are prefixed mt_nn_.
// The *_nograd variants run under NoGradGuard, as torch.nn.init does, so they work on leaves that require grad.
#include "common.h"

MT_API int32_t mt_nn_uniform_(mt_tensor t, double from, double to, mt_generator gen, bool no_grad) {
  MT_TRY
  if (!(from <= to)) throw std::invalid_argument("uniform_ expects from <= to, but got from=" + std::to_string(from) + " to=" + std::to_string(to));
  mt::optional<at::NoGradGuard> guard;
  if (no_grad) guard.emplace();
  mt::T(t).uniform_(from, to, mt::opt_gen(gen));
  MT_END
}

MT_API int32_t mt_nn_normal_(mt_tensor t, double mean, double std, mt_generator gen, bool no_grad) {
  MT_TRY
  if (!(std >= 0)) throw std::invalid_argument("normal_ expects std >= 0.0, but got std=" + std::to_string(std));
  mt::optional<at::NoGradGuard> guard;
  if (no_grad) guard.emplace();
  mt::T(t).normal_(mean, std, mt::opt_gen(gen));
  MT_END
}

MT_API int32_t mt_nn_constant_(mt_tensor t, mt_scalar value, bool no_grad) {
  MT_TRY
  mt::optional<at::NoGradGuard> guard;
  if (no_grad) guard.emplace();
  mt::T(t).fill_(mt::scalar(value));
  MT_END
}

