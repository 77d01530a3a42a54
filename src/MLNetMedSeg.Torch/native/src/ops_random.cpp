// Random sampling ops that take an explicit generator (NULL = the device's default generator).
// (uniform_/normal_ initialisers live with nn.init.)
#include "common.h"

// Draws 0/1 with the probabilities held by `a`.
MT_API int32_t mt_bernoulli(mt_tensor a, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::bernoulli(mt::T(a), mt::opt_gen(gen))); MT_END
}
// Draws 0/1 with probability p, shaped (and typed) like `a`.
MT_API int32_t mt_bernoulli_p(mt_tensor a, double p, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::bernoulli(mt::T(a), p, mt::opt_gen(gen))); MT_END
}
MT_API int32_t mt_bernoulli_p_(mt_tensor a, double p, mt_generator gen) {
  MT_TRY mt::T(a).bernoulli_(p, mt::opt_gen(gen)); MT_END
}
MT_API int32_t mt_bernoulli_tensor_(mt_tensor a, mt_tensor p, mt_generator gen) {
  MT_TRY mt::T(a).bernoulli_(mt::T(p), mt::opt_gen(gen)); MT_END
}

// Normal samples with per-element means and/or standard deviations.
MT_API int32_t mt_normal_tt(mt_tensor mean, mt_tensor std, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::normal(mt::T(mean), mt::T(std), mt::opt_gen(gen))); MT_END
}
MT_API int32_t mt_normal_ts(mt_tensor mean, double std, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::normal(mt::T(mean), std, mt::opt_gen(gen))); MT_END
}
MT_API int32_t mt_normal_st(double mean, mt_tensor std, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::normal(mean, mt::T(std), mt::opt_gen(gen))); MT_END
}
MT_API int32_t mt_normal_size(double mean, double std, const int64_t* shape, int64_t n, mt_generator gen, int32_t dtype,
                              int32_t device_type, int32_t device_index, mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::normal(mean, std, mt::ints(shape, n), mt::opt_gen(gen), mt::options(dtype, device_type, device_index)));
  MT_END
}

// num_samples category indices per row of the (unnormalised, non-negative) weights in `a`.
MT_API int32_t mt_multinomial(mt_tensor a, int64_t num_samples, bool replacement, mt_generator gen, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::multinomial(mt::T(a), num_samples, replacement, mt::opt_gen(gen))); MT_END
}

// Integers uniformly drawn from [from, to) in place; has_to false = up to the dtype's largest value (PyTorch's to=None).
MT_API int32_t mt_random_(mt_tensor a, int64_t from, bool has_to, int64_t to, mt_generator gen) {
  MT_TRY mt::T(a).random_(from, has_to ? mt::optional<int64_t>(to) : mt::nullopt, mt::opt_gen(gen)); MT_END
}
