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

// ---- powers (tensor or scalar exponent; scalar base)
MT_BINARY(pow, at::pow(a, b))
MT_BINARY_S(pow_scalar, at::pow(a, s))
// base ** tensor
MT_API int32_t mt_pow_scalar_base(mt_scalar base, mt_tensor exponent, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::pow(mt::scalar(base), mt::T(exponent))); MT_END
}
MT_API int32_t mt_pow_(mt_tensor a, mt_tensor b) { MT_TRY mt::T(a).pow_(mt::T(b)); MT_END }
MT_API int32_t mt_pow_scalar_(mt_tensor a, mt_scalar b) { MT_TRY mt::T(a).pow_(mt::scalar(b)); MT_END }

// ---- remainder (Python's %: the result has the sign of the divisor)
MT_BINARY(remainder, at::remainder(a, b))
MT_BINARY_S(remainder_scalar, at::remainder(a, s))

// ---- elementwise unary functions, each with its in-place form
#define MT_UNARY_PAIR(name) \
  MT_UNARY(name, at::name(a)) \
  MT_UNARY_(name##_, a.name##_())
MT_UNARY_PAIR(sqrt)
MT_UNARY_PAIR(rsqrt)
MT_UNARY_PAIR(exp)
MT_UNARY_PAIR(log)
MT_UNARY_PAIR(log1p)
MT_UNARY_PAIR(abs)
MT_UNARY_PAIR(sign)
MT_UNARY_PAIR(neg)
MT_UNARY_PAIR(reciprocal)
MT_UNARY_PAIR(floor)
MT_UNARY_PAIR(ceil)
MT_UNARY_PAIR(round)
MT_UNARY_PAIR(trunc)
MT_UNARY_PAIR(sin)
MT_UNARY_PAIR(cos)
MT_UNARY_PAIR(square)
MT_UNARY_PAIR(logical_not)
MT_UNARY_PAIR(bitwise_not)
MT_UNARY(isnan, at::isnan(a))
MT_UNARY(isfinite, at::isfinite(a))
MT_UNARY(isinf, at::isinf(a))

// ---- clamp with optional scalar bounds (kind -1 = absent) or optional tensor bounds (NULL = absent)
MT_API int32_t mt_clamp(mt_tensor a, mt_scalar min, mt_scalar max, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::clamp(mt::T(a), mt::opt_scalar(min), mt::opt_scalar(max))); MT_END
}
MT_API int32_t mt_clamp_(mt_tensor a, mt_scalar min, mt_scalar max) {
  MT_TRY mt::T(a).clamp_(mt::opt_scalar(min), mt::opt_scalar(max)); MT_END
}
MT_API int32_t mt_clamp_tensor(mt_tensor a, mt_tensor min, mt_tensor max, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::clamp(mt::T(a), mt::opt_t(min), mt::opt_t(max))); MT_END
}
MT_API int32_t mt_clamp_tensor_(mt_tensor a, mt_tensor min, mt_tensor max) {
  MT_TRY mt::T(a).clamp_(mt::opt_t(min), mt::opt_t(max)); MT_END
}

// ---- elementwise maximum / minimum
MT_BINARY(maximum, at::maximum(a, b))
MT_BINARY(minimum, at::minimum(a, b))

// ---- where(condition, x, y); the *_s forms take a scalar for x and/or y
MT_API int32_t mt_where(mt_tensor cond, mt_tensor x, mt_tensor y, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::where(mt::T(cond), mt::T(x), mt::T(y))); MT_END
}
MT_API int32_t mt_where_ts(mt_tensor cond, mt_tensor x, mt_scalar y, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::where(mt::T(cond), mt::T(x), mt::scalar(y))); MT_END
}
MT_API int32_t mt_where_st(mt_tensor cond, mt_scalar x, mt_tensor y, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::where(mt::T(cond), mt::scalar(x), mt::T(y))); MT_END
}
MT_API int32_t mt_where_ss(mt_tensor cond, mt_scalar x, mt_scalar y, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::where(mt::T(cond), mt::scalar(x), mt::scalar(y))); MT_END
}

// ---- logical and bitwise (on bool tensors the bitwise ops are the logical ones)
MT_BINARY(logical_and, at::logical_and(a, b))
MT_BINARY(logical_or, at::logical_or(a, b))
MT_BINARY(logical_xor, at::logical_xor(a, b))
MT_BINARY(bitwise_and, at::bitwise_and(a, b))
MT_BINARY(bitwise_or, at::bitwise_or(a, b))
MT_BINARY(bitwise_xor, at::bitwise_xor(a, b))
MT_BINARY_S(bitwise_and_scalar, at::bitwise_and(a, s))
MT_BINARY_S(bitwise_or_scalar, at::bitwise_or(a, s))
MT_BINARY_S(bitwise_xor_scalar, at::bitwise_xor(a, s))

// ---- comparisons (bool results)
#define MT_COMPARE(name)                    \
  MT_BINARY(name, at::name(a, b))           \
  MT_BINARY_S(name##_scalar, at::name(a, s))
MT_COMPARE(eq)
MT_COMPARE(ne)
MT_COMPARE(lt)
MT_COMPARE(le)
MT_COMPARE(gt)
MT_COMPARE(ge)

// ---- whole-tensor predicates
MT_API int32_t mt_allclose(mt_tensor a, mt_tensor b, double rtol, double atol, bool equal_nan, bool* out) {
  MT_TRY *out = at::allclose(mt::T(a), mt::T(b), rtol, atol, equal_nan); MT_END
}
// Same shape and same elements.
MT_API int32_t mt_equal(mt_tensor a, mt_tensor b, bool* out) { MT_TRY *out = at::equal(mt::T(a), mt::T(b)); MT_END }
