// Reductions: sums, means, extrema, arg-extrema, variance, products, logical reductions, norms, scans, sorting.
// Dimension lists are (const int64_t* dims, int64_t n); optional dtype is -1.
#include "common.h"

// Number of elements folded into each output element when reducing `dims` (all dims when n < 0).
static int64_t reduced_count(const at::Tensor& t, const int64_t* dims, int64_t n) {
  if (n < 0) return t.numel();
  int64_t count = 1;
  auto sizes = t.sizes();
  int64_t nd = t.dim();
  for (int64_t k = 0; k < n; ++k) count *= sizes[c10::maybe_wrap_dim(dims[k], nd)];
  return count;
}

// ---- sum / mean
MT_API int32_t mt_sum_dims(mt_tensor a, const int64_t* dims, int64_t n, bool keepdim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::sum(mt::T(a), mt::ints(dims, n), keepdim, mt::opt_dtype(dtype))); MT_END
}
MT_API int32_t mt_mean_dims(mt_tensor a, const int64_t* dims, int64_t n, bool keepdim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::mean(mt::T(a), mt::ints(dims, n), keepdim, mt::opt_dtype(dtype))); MT_END
}

// ---- extrema
MT_UNARY(max_all, at::max(a))
MT_UNARY(min_all, at::min(a))
MT_API int32_t mt_max_dim(mt_tensor a, int64_t dim, bool keepdim, mt_tensor* values, mt_tensor* indices) {
  MT_TRY
  auto r = at::max(mt::T(a), dim, keepdim);
  *values = mt::wrap(std::get<0>(r));
  *indices = mt::wrap(std::get<1>(r));
  MT_END
}
MT_API int32_t mt_min_dim(mt_tensor a, int64_t dim, bool keepdim, mt_tensor* values, mt_tensor* indices) {
  MT_TRY
  auto r = at::min(mt::T(a), dim, keepdim);
  *values = mt::wrap(std::get<0>(r));
  *indices = mt::wrap(std::get<1>(r));
  MT_END
}
MT_API int32_t mt_amax(mt_tensor a, const int64_t* dims, int64_t n, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::amax(mt::T(a), mt::ints(dims, n), keepdim)); MT_END
}
MT_API int32_t mt_amin(mt_tensor a, const int64_t* dims, int64_t n, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::amin(mt::T(a), mt::ints(dims, n), keepdim)); MT_END
}
// has_dim false: index into the flattened tensor.
MT_API int32_t mt_argmax(mt_tensor a, bool has_dim, int64_t dim, bool keepdim, mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::argmax(mt::T(a), has_dim ? mt::optional<int64_t>(dim) : mt::nullopt, keepdim));
  MT_END
}
MT_API int32_t mt_argmin(mt_tensor a, bool has_dim, int64_t dim, bool keepdim, mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::argmin(mt::T(a), has_dim ? mt::optional<int64_t>(dim) : mt::nullopt, keepdim));
  MT_END
}

// ---- variance / standard deviation with Bessel-style `correction` (1 = unbiased, 0 = population).
// n < 0 reduces over all dimensions. Corrections other than 0 and 1 rescale the population variance by
// N / (N - correction), which keeps the code independent of the libtorch version's correction type.
static at::Tensor var_impl(const at::Tensor& t, const int64_t* dims, int64_t n, int64_t correction, bool keepdim) {
  if (correction < 0) throw std::invalid_argument("correction must be non-negative");
  at::OptionalIntArrayRef d = n < 0 ? at::OptionalIntArrayRef() : at::OptionalIntArrayRef(mt::ints(dims, n));
  if (correction <= 1) return at::var(t, d, correction == 1, keepdim);
  int64_t count = reduced_count(t, dims, n);
  auto pop = at::var(t, d, false, keepdim);
  // N - correction <= 0 yields inf/nan, as in PyTorch.
  return pop * (static_cast<double>(count) / static_cast<double>(count - correction));
}
MT_API int32_t mt_var(mt_tensor a, const int64_t* dims, int64_t n, int64_t correction, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(var_impl(mt::T(a), dims, n, correction, keepdim)); MT_END
}
MT_API int32_t mt_std(mt_tensor a, const int64_t* dims, int64_t n, int64_t correction, bool keepdim, mt_tensor* out) {
  MT_TRY
  const auto& t = mt::T(a);
  if (correction <= 1 && correction >= 0) {
    at::OptionalIntArrayRef d = n < 0 ? at::OptionalIntArrayRef() : at::OptionalIntArrayRef(mt::ints(dims, n));
    *out = mt::wrap(at::std(t, d, correction == 1, keepdim));
  } else {
    *out = mt::wrap(at::sqrt(var_impl(t, dims, n, correction, keepdim)));
  }
  MT_END
}

// ---- products
MT_API int32_t mt_prod_all(mt_tensor a, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::prod(mt::T(a), mt::opt_dtype(dtype))); MT_END
}
MT_API int32_t mt_prod_dim(mt_tensor a, int64_t dim, bool keepdim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::prod(mt::T(a), dim, keepdim, mt::opt_dtype(dtype))); MT_END
}

// ---- logical reductions
MT_UNARY(all_all, at::all(a))
MT_UNARY(any_all, at::any(a))
MT_API int32_t mt_all_dim(mt_tensor a, int64_t dim, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::all(mt::T(a), dim, keepdim)); MT_END
}
MT_API int32_t mt_any_dim(mt_tensor a, int64_t dim, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::any(mt::T(a), dim, keepdim)); MT_END
}

// ---- norms (p-norm over all elements when n < 0)
MT_API int32_t mt_norm(mt_tensor a, double p, const int64_t* dims, int64_t n, bool keepdim, mt_tensor* out) {
  MT_TRY
  const auto& t = mt::T(a);
  if (n < 0) *out = mt::wrap(at::norm(t, at::Scalar(p)));
  else *out = mt::wrap(at::norm(t, mt::optional<at::Scalar>(at::Scalar(p)), mt::ints(dims, n), keepdim));
  MT_END
}
MT_API int32_t mt_logsumexp(mt_tensor a, const int64_t* dims, int64_t n, bool keepdim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::logsumexp(mt::T(a), mt::ints(dims, n), keepdim)); MT_END
}

// ---- scans
MT_API int32_t mt_cumsum(mt_tensor a, int64_t dim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::cumsum(mt::T(a), dim, mt::opt_dtype(dtype))); MT_END
}
MT_API int32_t mt_cumprod(mt_tensor a, int64_t dim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::cumprod(mt::T(a), dim, mt::opt_dtype(dtype))); MT_END
}

// ---- sorting
MT_API int32_t mt_sort(mt_tensor a, int64_t dim, bool descending, bool stable, mt_tensor* values, mt_tensor* indices) {
  MT_TRY
  auto r = at::sort(mt::T(a), mt::optional<bool>(stable), dim, descending);
  *values = mt::wrap(std::get<0>(r));
  *indices = mt::wrap(std::get<1>(r));
  MT_END
}
MT_API int32_t mt_topk(mt_tensor a, int64_t k, int64_t dim, bool largest, bool sorted, mt_tensor* values, mt_tensor* indices) {
  MT_TRY
  auto r = at::topk(mt::T(a), k, dim, largest, sorted);
  *values = mt::wrap(std::get<0>(r));
  *indices = mt::wrap(std::get<1>(r));
  MT_END
}
