// Elementwise arithmetic, comparison and math functions.
#include "common.h"

// ---- arithmetic with tensors and scalars (alpha scales the second operand as in torch.add)
MT_API int32_t mt_add(mt_tensor a, mt_tensor b, mt_scalar alpha, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::add(mt::T(a), mt::T(b), mt::scalar(alpha))); MT_END
}
MT_API int32_t mt_add_(mt_tensor a, mt_tensor b, mt_scalar alpha) {
  MT_TRY mt::T(a).add_(mt::T(b), mt::scalar(alpha)); MT_END
}
MT_API int32_t mt_add_scalar(mt_tensor a, mt_scalar b, mt_scalar alpha, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::add(mt::T(a), mt::scalar(b), mt::scalar(alpha))); MT_END
}
MT_API int32_t mt_add_scalar_(mt_tensor a, mt_scalar b, mt_scalar alpha) {
  MT_TRY mt::T(a).add_(mt::scalar(b), mt::scalar(alpha)); MT_END
}
MT_API int32_t mt_sub(mt_tensor a, mt_tensor b, mt_scalar alpha, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::sub(mt::T(a), mt::T(b), mt::scalar(alpha))); MT_END
}
MT_API int32_t mt_sub_(mt_tensor a, mt_tensor b, mt_scalar alpha) {
  MT_TRY mt::T(a).sub_(mt::T(b), mt::scalar(alpha)); MT_END
}
MT_API int32_t mt_sub_scalar(mt_tensor a, mt_scalar b, mt_scalar alpha, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::sub(mt::T(a), mt::scalar(b), mt::scalar(alpha))); MT_END
}
MT_API int32_t mt_sub_scalar_(mt_tensor a, mt_scalar b, mt_scalar alpha) {
  MT_TRY mt::T(a).sub_(mt::scalar(b), mt::scalar(alpha)); MT_END
}
// scalar - tensor
MT_API int32_t mt_rsub_scalar(mt_tensor a, mt_scalar b, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::rsub(mt::T(a), mt::scalar(b))); MT_END
}
MT_BINARY(mul, at::mul(a, b))
MT_BINARY_S(mul_scalar, at::mul(a, s))
MT_API int32_t mt_mul_(mt_tensor a, mt_tensor b) { MT_TRY mt::T(a).mul_(mt::T(b)); MT_END }
MT_API int32_t mt_mul_scalar_(mt_tensor a, mt_scalar b) { MT_TRY mt::T(a).mul_(mt::scalar(b)); MT_END }
MT_BINARY(div, at::div(a, b))
MT_BINARY_S(div_scalar, at::div(a, s))
MT_API int32_t mt_div_(mt_tensor a, mt_tensor b) { MT_TRY mt::T(a).div_(mt::T(b)); MT_END }
MT_API int32_t mt_div_scalar_(mt_tensor a, mt_scalar b) { MT_TRY mt::T(a).div_(mt::scalar(b)); MT_END }
// scalar / tensor
MT_API int32_t mt_rdiv_scalar(mt_tensor a, mt_scalar b, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::mul(at::reciprocal(mt::T(a)), mt::scalar(b))); MT_END
}

// ---- reductions over all elements (more in ops_reduce.cpp)
MT_UNARY(sum_all, at::sum(a))
MT_UNARY(mean_all, at::mean(a))
