// Optimizer update rules and gradient clipping.
//
// Each step function updates ONE parameter in place with the exact sequence of at:: operations of
// PyTorch 1.13's single-tensor implementation (torch/optim/{sgd,adam,adamw,rmsprop}.py, `_single_tensor_*`),
// so that results agree with PyTorch bit for bit on the same device. State tensors are owned by the caller
// (the C# optimizer); hyper-parameters are plain doubles, as Python floats are in PyTorch.
#include "common.h"

#include <cmath>
#include <limits>

// SGD (torch.optim.sgd._single_tensor_sgd). `buf` is the momentum buffer or NULL when none exists yet;
// with momentum != 0 and no buffer, the new buffer (a detached clone of the first update direction) is
// returned in *new_buf, otherwise *new_buf is NULL.
MT_API int32_t mt_sgd_step(mt_tensor param_, mt_tensor grad_, mt_tensor buf_, double lr, double momentum,
                           double dampening, double weight_decay, bool nesterov, bool maximize, mt_tensor* new_buf) {
  MT_TRY
  at::NoGradGuard no_grad;
  *new_buf = nullptr;
  const at::Tensor& param = mt::T(param_);
  at::Tensor d_p = maximize ? at::neg(mt::T(grad_)) : mt::T(grad_);
  if (weight_decay != 0) d_p = d_p.add(param, weight_decay);
  if (momentum != 0) {
    at::Tensor buf;
    if (buf_ == nullptr) {
      buf = at::clone(d_p).detach();
      *new_buf = mt::wrap(buf);
    } else {
      buf = *buf_;
      buf.mul_(momentum).add_(d_p, 1 - dampening);
    }
    if (nesterov) d_p = d_p.add(buf, momentum);
    else d_p = buf;
  }
  param.add_(d_p, -lr);
  MT_END
}

// Adam / AdamW (torch.optim.adam._single_tensor_adam, torch.optim.adamw._single_tensor_adamw, non-capturable).
// `step` is the step count AFTER incrementing (1 on the first update). With decoupled_weight_decay (AdamW) the
// parameter is multiplied by (1 - lr * weight_decay); otherwise weight_decay * param is added to the gradient.
// max_exp_avg_sq must be given when amsgrad is true (NULL otherwise).
MT_API int32_t mt_adam_step(mt_tensor param_, mt_tensor grad_, mt_tensor exp_avg_, mt_tensor exp_avg_sq_,
                            mt_tensor max_exp_avg_sq_, int64_t step, double lr, double beta1, double beta2,
                            double eps, double weight_decay, bool amsgrad, bool decoupled_weight_decay,
                            bool maximize) {
  MT_TRY
  at::NoGradGuard no_grad;
  const at::Tensor& param = mt::T(param_);
  at::Tensor grad = maximize ? at::neg(mt::T(grad_)) : mt::T(grad_);
  const at::Tensor& exp_avg = mt::T(exp_avg_);
  const at::Tensor& exp_avg_sq = mt::T(exp_avg_sq_);
  if (step < 1) throw std::invalid_argument("adam step count must be >= 1");
  if (amsgrad && max_exp_avg_sq_ == nullptr) throw std::invalid_argument("amsgrad needs the max_exp_avg_sq state tensor");

  if (decoupled_weight_decay) {
    param.mul_(1 - lr * weight_decay);
  } else if (weight_decay != 0) {
    grad = grad.add(param, weight_decay);
  }

  exp_avg.mul_(beta1).add_(grad, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

  double s = static_cast<double>(step);
  double bias_correction1 = 1 - std::pow(beta1, s);
  double bias_correction2 = 1 - std::pow(beta2, s);
  double step_size = lr / bias_correction1;
  double bias_correction2_sqrt = std::sqrt(bias_correction2);

  at::Tensor denom;
  if (amsgrad) {
    at::Tensor max_sq = mt::T(max_exp_avg_sq_);
    at::maximum_out(max_sq, max_sq, exp_avg_sq);
    denom = (max_sq.sqrt() / bias_correction2_sqrt).add_(eps);
  } else {
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
  }
  param.addcdiv_(exp_avg, denom, -step_size);
  MT_END
}

// Adam / AdamW over a list of parameters with libtorch's multi-tensor (_foreach_*) kernels, as PyTorch's
// `_multi_tensor_adam` (non-capturable, no amsgrad): a handful of kernel launches for the whole list instead of
// eight per parameter, which is what PyTorch does by default when every parameter is on a GPU. steps[k] is
// parameter k's step count AFTER incrementing. The arithmetic is the single-tensor rule's; only the first-moment
// update is spelled as PyTorch of the linked version spells it (lerp from 2.0 on, mul + add before), so that results
// agree with the PyTorch the shim is built against. Tensors of mixed devices or dtypes are allowed (libtorch then
// takes its per-tensor path).
MT_API int32_t mt_adam_step_foreach(const mt_tensor* params_, const mt_tensor* grads_, const mt_tensor* exp_avgs_,
                                    const mt_tensor* exp_avg_sqs_, const int64_t* steps, int64_t n, double lr,
                                    double beta1, double beta2, double eps, double weight_decay,
                                    bool decoupled_weight_decay, bool maximize) {
  MT_TRY
  at::NoGradGuard no_grad;
  if (n <= 0) throw std::invalid_argument("adam (foreach): empty parameter list");
  std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs;
  params.reserve(n); grads.reserve(n); exp_avgs.reserve(n); exp_avg_sqs.reserve(n);
  std::vector<at::Scalar> step_size, bias_correction2_sqrt;
  step_size.reserve(n); bias_correction2_sqrt.reserve(n);
  for (int64_t k = 0; k < n; ++k) {
    if (steps[k] < 1) throw std::invalid_argument("adam step count must be >= 1");
    params.push_back(mt::T(params_[k]));
    grads.push_back(mt::T(grads_[k]));
    exp_avgs.push_back(mt::T(exp_avgs_[k]));
    exp_avg_sqs.push_back(mt::T(exp_avg_sqs_[k]));
    double s = static_cast<double>(steps[k]);
    step_size.emplace_back(-(lr / (1 - std::pow(beta1, s))));
    bias_correction2_sqrt.emplace_back(std::sqrt(1 - std::pow(beta2, s)));
  }
  if (maximize) grads = at::_foreach_neg(grads);
  if (decoupled_weight_decay) {
    if (weight_decay != 0) at::_foreach_mul_(params, 1 - lr * weight_decay);
  } else if (weight_decay != 0) {
    grads = at::_foreach_add(grads, params, weight_decay);
  }
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_lerp_(exp_avgs, grads, 1 - beta1);
#else
  at::_foreach_mul_(exp_avgs, beta1);
  at::_foreach_add_(exp_avgs, grads, 1 - beta1);
#endif
  at::_foreach_mul_(exp_avg_sqs, beta2);
  at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(exp_avg_sqs);
  at::_foreach_div_(denom, at::ArrayRef<at::Scalar>(bias_correction2_sqrt));
  at::_foreach_add_(denom, eps);
  at::_foreach_addcdiv_(params, exp_avgs, denom, at::ArrayRef<at::Scalar>(step_size));
  MT_END
}

// RMSprop (torch.optim.rmsprop._single_tensor_rmsprop). grad_avg is required when centered, momentum_buffer
// when momentum > 0 (NULL otherwise).
MT_API int32_t mt_rmsprop_step(mt_tensor param_, mt_tensor grad_, mt_tensor square_avg_, mt_tensor grad_avg_,
                               mt_tensor momentum_buffer_, double lr, double alpha, double eps, double weight_decay,
                               double momentum, bool centered, bool maximize) {
  MT_TRY
  at::NoGradGuard no_grad;
  const at::Tensor& param = mt::T(param_);
  at::Tensor grad = maximize ? at::neg(mt::T(grad_)) : mt::T(grad_);
  const at::Tensor& square_avg = mt::T(square_avg_);
  if (centered && grad_avg_ == nullptr) throw std::invalid_argument("centered RMSprop needs the grad_avg state tensor");
  if (momentum > 0 && momentum_buffer_ == nullptr) throw std::invalid_argument("RMSprop with momentum needs the momentum_buffer state tensor");

  if (weight_decay != 0) grad = grad.add(param, weight_decay);

  square_avg.mul_(alpha).addcmul_(grad, grad, 1 - alpha);

  at::Tensor avg;
  if (centered) {
    const at::Tensor& grad_avg = mt::T(grad_avg_);
    grad_avg.mul_(alpha).add_(grad, 1 - alpha);
    avg = square_avg.addcmul(grad_avg, grad_avg, -1).sqrt_();
  } else {
    avg = square_avg.sqrt();
  }
  avg = avg.add_(eps);

  if (momentum > 0) {
    const at::Tensor& buf = mt::T(momentum_buffer_);
    buf.mul_(momentum).addcdiv_(grad, avg);
    param.add_(buf, -lr);
  } else {
    param.addcdiv_(grad, avg, -lr);
  }
  MT_END
}

// torch.nn.utils.clip_grad_norm_ (PyTorch 1.13): the norm of all gradients of `params` taken together
// (parameters without a gradient are skipped), then every gradient is scaled in place by
// clamp(max_norm / (total_norm + 1e-6), max = 1). norm_type may be +inf. *total_norm is 0 when no
// parameter has a gradient.
MT_API int32_t mt_clip_grad_norm_(const mt_tensor* params, int64_t n, double max_norm, double norm_type,
                                  double* total_norm_out) {
  MT_TRY
  at::NoGradGuard no_grad;
  if (n < 0) throw std::invalid_argument("negative parameter count");
  std::vector<at::Tensor> grads;
  for (int64_t k = 0; k < n; ++k) {
    at::Tensor g = mt::T(params[k]).grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) {
    *total_norm_out = 0.0;
    return MT_OK;
  }
  auto device = grads[0].device();
  at::Tensor total_norm;
  if (std::isinf(norm_type) && norm_type > 0) {
    std::vector<at::Tensor> norms;
    for (auto& g : grads) norms.push_back(g.detach().abs().max().to(device));
    total_norm = norms.size() == 1 ? norms[0] : at::max(at::stack(norms));
  } else {
    std::vector<at::Tensor> norms;
    for (auto& g : grads) norms.push_back(at::norm(g.detach(), at::Scalar(norm_type)).to(device));
    total_norm = at::norm(at::stack(norms), at::Scalar(norm_type));
  }
  // Python's `max_norm / (total_norm + 1e-6)` is Tensor.__rdiv__: reciprocal() * max_norm.
  at::Tensor clip_coef = (total_norm + 1e-6).reciprocal() * max_norm;
  at::Tensor clip_coef_clamped = at::clamp_max(clip_coef, 1.0);
  for (auto& g : grads) g.detach().mul_(clip_coef_clamped.to(g.device()));
  *total_norm_out = total_norm.item<double>();
  MT_END
}
