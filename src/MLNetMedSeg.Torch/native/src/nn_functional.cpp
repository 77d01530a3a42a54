// torch.nn.functional: linear algebra for layers, convolutions, pooling, normalization, dropout, embedding,
// resampling (interpolate, affine_grid, grid_sample) and losses. Entry points are prefixed mt_nn_.
#include "common.h"
#include <ATen/ExpandUtils.h>

namespace {

// An absent int array (NULL pointer or negative length) -> empty array ref (ATen's "use the default").
at::IntArrayRef ints_or_empty(const int64_t* p, int64_t n) {
  if (p == nullptr || n <= 0) return at::IntArrayRef();
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

// An absent int array -> a default value (e.g. stride 1, padding 0), expanded by ATen to every dimension.
std::vector<int64_t> ints_or(const int64_t* p, int64_t n, int64_t dflt) {
  if (p == nullptr || n <= 0) return {dflt};
  return std::vector<int64_t>(p, p + n);
}

void check_reduction(int32_t r) {
  if (r < 0 || r > 2) throw std::invalid_argument("reduction must be 0 (none), 1 (mean) or 2 (sum)");
}

}  // namespace

// ---- matrix products
MT_BINARY(nn_matmul, at::matmul(a, b))
MT_BINARY(nn_bmm, at::bmm(a, b))

MT_API int32_t mt_nn_linear(mt_tensor input, mt_tensor weight, mt_tensor bias, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::linear(mt::T(input), mt::T(weight), mt::opt_t(bias))); MT_END
}

MT_API int32_t mt_nn_flatten(mt_tensor a, int64_t start_dim, int64_t end_dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::flatten(mt::T(a), start_dim, end_dim)); MT_END
}

// ---- convolutions
MT_API int32_t mt_nn_conv2d(mt_tensor input, mt_tensor weight, mt_tensor bias,
                            const int64_t* stride, int64_t n_stride, const int64_t* padding, int64_t n_padding,
                            const int64_t* dilation, int64_t n_dilation, int64_t groups, mt_tensor* out) {
  MT_TRY
  auto s = ints_or(stride, n_stride, 1), p = ints_or(padding, n_padding, 0), d = ints_or(dilation, n_dilation, 1);
  *out = mt::wrap(at::conv2d(mt::T(input), mt::T(weight), mt::opt_t(bias), s, p, d, groups));
  MT_END
}

MT_API int32_t mt_nn_conv_transpose2d(mt_tensor input, mt_tensor weight, mt_tensor bias,
                                      const int64_t* stride, int64_t n_stride, const int64_t* padding, int64_t n_padding,
                                      const int64_t* output_padding, int64_t n_output_padding, int64_t groups,
                                      const int64_t* dilation, int64_t n_dilation, mt_tensor* out) {
  MT_TRY
  auto s = ints_or(stride, n_stride, 1), p = ints_or(padding, n_padding, 0);
  auto op = ints_or(output_padding, n_output_padding, 0), d = ints_or(dilation, n_dilation, 1);
  *out = mt::wrap(at::conv_transpose2d(mt::T(input), mt::T(weight), mt::opt_t(bias), s, p, op, groups, d));
  MT_END
}

// ---- pooling (an absent stride means stride = kernel_size, as in PyTorch)
MT_API int32_t mt_nn_max_pool2d(mt_tensor input, const int64_t* kernel, int64_t n_kernel, const int64_t* stride, int64_t n_stride,
                                const int64_t* padding, int64_t n_padding, const int64_t* dilation, int64_t n_dilation,
                                bool ceil_mode, mt_tensor* out) {
  MT_TRY
  auto p = ints_or(padding, n_padding, 0), d = ints_or(dilation, n_dilation, 1);
  *out = mt::wrap(at::max_pool2d(mt::T(input), mt::ints(kernel, n_kernel), ints_or_empty(stride, n_stride), p, d, ceil_mode));
  MT_END
}

// divisor_override <= 0: none.
MT_API int32_t mt_nn_avg_pool2d(mt_tensor input, const int64_t* kernel, int64_t n_kernel, const int64_t* stride, int64_t n_stride,
                                const int64_t* padding, int64_t n_padding, bool ceil_mode, bool count_include_pad,
                                int64_t divisor_override, mt_tensor* out) {
  MT_TRY
  auto p = ints_or(padding, n_padding, 0);
  mt::optional<int64_t> div = divisor_override > 0 ? mt::optional<int64_t>(divisor_override) : mt::nullopt;
  *out = mt::wrap(at::avg_pool2d(mt::T(input), mt::ints(kernel, n_kernel), ints_or_empty(stride, n_stride), p, ceil_mode,
                                 count_include_pad, div));
  MT_END
}

MT_API int32_t mt_nn_adaptive_avg_pool2d(mt_tensor input, const int64_t* size, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::adaptive_avg_pool2d(mt::T(input), mt::ints(size, n))); MT_END
}

MT_API int32_t mt_nn_adaptive_max_pool2d(mt_tensor input, const int64_t* size, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(std::get<0>(at::adaptive_max_pool2d(mt::T(input), mt::ints(size, n)))); MT_END
}

// ---- normalization
// In training mode, running_mean/running_var (when given) are updated in place with the given momentum.
MT_API int32_t mt_nn_batch_norm(mt_tensor input, mt_tensor running_mean, mt_tensor running_var, mt_tensor weight, mt_tensor bias,
                                bool training, double momentum, double eps, mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::batch_norm(mt::T(input), mt::opt_t(weight), mt::opt_t(bias), mt::opt_t(running_mean),
                                 mt::opt_t(running_var), training, momentum, eps, at::globalContext().userEnabledCuDNN()));
  MT_END
}

MT_API int32_t mt_nn_group_norm(mt_tensor input, int64_t num_groups, mt_tensor weight, mt_tensor bias, double eps, mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::group_norm(mt::T(input), num_groups, mt::opt_t(weight), mt::opt_t(bias), eps,
                                 at::globalContext().userEnabledCuDNN()));
  MT_END
}

MT_API int32_t mt_nn_layer_norm(mt_tensor input, const int64_t* shape, int64_t n, mt_tensor weight, mt_tensor bias, double eps,
                                mt_tensor* out) {
  MT_TRY
  *out = mt::wrap(at::layer_norm(mt::T(input), mt::ints(shape, n), mt::opt_t(weight), mt::opt_t(bias), eps,
                                 at::globalContext().userEnabledCuDNN()));
  MT_END
}

// ---- dropout. The keep-mask is drawn with bernoulli from `gen` (NULL = the device's global generator), so a
// seeded generator gives reproducible masks. channel_wise: one draw per (N, C) plane (Dropout2d).
MT_API int32_t mt_nn_dropout(mt_tensor input, double p, bool training, bool channel_wise, mt_generator gen, mt_tensor* out) {
  MT_TRY
  const at::Tensor& x = mt::T(input);
  if (p < 0.0 || p > 1.0) throw std::invalid_argument("dropout probability has to be between 0 and 1, but got " + std::to_string(p));
  if (!training || p == 0.0) {
    *out = mt::wrap(x);
  } else if (p == 1.0) {
    *out = mt::wrap(x * at::zeros({}, x.options()));
  } else {
    at::Tensor mask;
    {
      at::NoGradGuard no_grad;
      if (channel_wise) {
        if (x.dim() < 2) throw std::invalid_argument("dropout2d expects an input of at least 2 dimensions (N, C, ...)");
        std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
        shape[0] = x.size(0);
        shape[1] = x.size(1);
        mask = at::empty(shape, x.options().requires_grad(false));
      } else {
        mask = at::empty_like(x, x.options().requires_grad(false));
      }
      mask.bernoulli_(1.0 - p, mt::opt_gen(gen));
      mask.div_(1.0 - p);
    }
    *out = mt::wrap(x * mask);
  }
  MT_END
}

MT_API int32_t mt_nn_embedding(mt_tensor indices, mt_tensor weight, int64_t padding_idx, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::embedding(mt::T(weight), mt::T(indices), padding_idx)); MT_END
}

// ---- resampling
// mode: 0 nearest, 1 bilinear, 2 bicubic, 3 trilinear. Exactly one of size / scale_factor is given (n > 0).
// align_corners: -1 not given (false), 0, 1; must not be set for nearest.
MT_API int32_t mt_nn_interpolate(mt_tensor input, const int64_t* size, int64_t n_size, const double* scale, int64_t n_scale,
                                 int32_t mode, int32_t align_corners, mt_tensor* out) {
  MT_TRY
  const at::Tensor& x = mt::T(input);
  const int64_t spatial = x.dim() - 2;
  if (spatial < 1 || spatial > 3)
    throw std::invalid_argument("interpolate expects a 3-D, 4-D or 5-D input (N, C, spatial...), got " + std::to_string(x.dim()) + "-D");
  const bool has_size = size != nullptr && n_size > 0, has_scale = scale != nullptr && n_scale > 0;
  if (has_size == has_scale) throw std::invalid_argument("interpolate: give exactly one of size and scale_factor");
  if (has_size && n_size != spatial)
    throw std::invalid_argument("interpolate: size needs " + std::to_string(spatial) + " values for this input");
  if (has_scale && n_scale != spatial)
    throw std::invalid_argument("interpolate: scale_factor needs " + std::to_string(spatial) + " values for this input");
  at::OptionalIntArrayRef osize = has_size ? at::OptionalIntArrayRef(at::IntArrayRef(size, static_cast<size_t>(n_size))) : mt::nullopt;
  mt::optional<at::ArrayRef<double>> oscale =
      has_scale ? mt::optional<at::ArrayRef<double>>(at::ArrayRef<double>(scale, static_cast<size_t>(n_scale))) : mt::nullopt;
  const bool ac = align_corners == 1;
  at::Tensor r;
  switch (mode) {
    case 0:
      if (align_corners >= 0)
        throw std::invalid_argument("align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear");
      if (spatial == 1) r = at::upsample_nearest1d(x, osize, oscale);
      else if (spatial == 2) r = at::upsample_nearest2d(x, osize, oscale);
      else r = at::upsample_nearest3d(x, osize, oscale);
      break;
    case 1:
      if (spatial != 2) throw std::invalid_argument("interpolate: bilinear mode needs a 4-D input (N, C, H, W)");
      r = at::upsample_bilinear2d(x, osize, ac, oscale);
      break;
    case 2:
      if (spatial != 2) throw std::invalid_argument("interpolate: bicubic mode needs a 4-D input (N, C, H, W)");
      r = at::upsample_bicubic2d(x, osize, ac, oscale);
      break;
    case 3:
      if (spatial != 3) throw std::invalid_argument("interpolate: trilinear mode needs a 5-D input (N, C, D, H, W)");
      r = at::upsample_trilinear3d(x, osize, ac, oscale);
      break;
    default:
      throw std::invalid_argument("interpolate: unknown mode " + std::to_string(mode));
  }
  *out = mt::wrap(std::move(r));
  MT_END
}

MT_API int32_t mt_nn_affine_grid(mt_tensor theta, const int64_t* size, int64_t n, bool align_corners, mt_tensor* out) {
  MT_TRY
  const at::Tensor& t = mt::T(theta);
  if (!at::isFloatingType(t.scalar_type())) throw std::invalid_argument("affine_grid: theta must be a floating-point tensor");
  if (n == 4) {
    if (t.dim() != 3 || t.size(1) != 2 || t.size(2) != 3)
      throw std::invalid_argument("affine_grid: for 2-D grids theta must have shape (N, 2, 3)");
  } else if (n == 5) {
    if (t.dim() != 3 || t.size(1) != 3 || t.size(2) != 4)
      throw std::invalid_argument("affine_grid: for 3-D grids theta must have shape (N, 3, 4)");
  } else {
    throw std::invalid_argument("affine_grid: size must be (N, C, H, W) or (N, C, D, H, W)");
  }
  if (size[0] != t.size(0)) throw std::invalid_argument("affine_grid: size[0] must equal the batch size of theta");
  *out = mt::wrap(at::affine_grid_generator(t, mt::ints(size, n), align_corners));
  MT_END
}

// mode: 0 bilinear, 1 nearest, 2 bicubic; padding_mode: 0 zeros, 1 border, 2 reflection (ATen's numbering).
MT_API int32_t mt_nn_grid_sample(mt_tensor input, mt_tensor grid, int32_t mode, int32_t padding_mode, bool align_corners, mt_tensor* out) {
  MT_TRY
  if (mode < 0 || mode > 2) throw std::invalid_argument("grid_sample: unknown mode");
  if (padding_mode < 0 || padding_mode > 2) throw std::invalid_argument("grid_sample: unknown padding_mode");
  *out = mt::wrap(at::grid_sampler(mt::T(input), mt::T(grid), mode, padding_mode, align_corners));
  MT_END
}

// ---- losses. reduction: 0 none, 1 mean, 2 sum (at::Reduction).
MT_API int32_t mt_nn_binary_cross_entropy(mt_tensor input, mt_tensor target, mt_tensor weight, int32_t reduction, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  const at::Tensor& x = mt::T(input);
  const at::Tensor& y = mt::T(target);
  if (x.sizes() != y.sizes())
    throw std::invalid_argument("binary_cross_entropy: target size (" + c10::str(y.sizes()) + ") must be the same as input size (" +
                                c10::str(x.sizes()) + ")");
  at::Tensor w = mt::opt(weight);
  if (w.defined()) w = w.expand(at::infer_size(y.sizes(), w.sizes()));  // per-element weights, broadcast
  *out = mt::wrap(at::binary_cross_entropy(x, y, w.defined() ? mt::optional<at::Tensor>(w) : mt::nullopt, reduction));
  MT_END
}

MT_API int32_t mt_nn_binary_cross_entropy_with_logits(mt_tensor input, mt_tensor target, mt_tensor weight, mt_tensor pos_weight,
                                                      int32_t reduction, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  const at::Tensor& x = mt::T(input);
  const at::Tensor& y = mt::T(target);
  if (x.sizes() != y.sizes())
    throw std::invalid_argument("binary_cross_entropy_with_logits: target size (" + c10::str(y.sizes()) +
                                ") must be the same as input size (" + c10::str(x.sizes()) + ")");
  *out = mt::wrap(at::binary_cross_entropy_with_logits(x, y, mt::opt_t(weight), mt::opt_t(pos_weight), reduction));
  MT_END
}

MT_API int32_t mt_nn_mse_loss(mt_tensor input, mt_tensor target, int32_t reduction, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  const at::Tensor& x = mt::T(input);
  const at::Tensor& y = mt::T(target);
  auto shape = at::infer_size(x.sizes(), y.sizes());
  *out = mt::wrap(at::mse_loss(x.expand(shape), y.expand(shape), reduction));
  MT_END
}

MT_API int32_t mt_nn_l1_loss(mt_tensor input, mt_tensor target, int32_t reduction, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  const at::Tensor& x = mt::T(input);
  const at::Tensor& y = mt::T(target);
  auto shape = at::infer_size(x.sizes(), y.sizes());
  *out = mt::wrap(at::l1_loss(x.expand(shape), y.expand(shape), reduction));
  MT_END
}

MT_API int32_t mt_nn_cross_entropy(mt_tensor input, mt_tensor target, mt_tensor weight, int32_t reduction, int64_t ignore_index,
                                   double label_smoothing, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  *out = mt::wrap(at::cross_entropy_loss(mt::T(input), mt::T(target), mt::opt_t(weight), reduction, ignore_index, label_smoothing));
  MT_END
}

MT_API int32_t mt_nn_nll_loss(mt_tensor input, mt_tensor target, mt_tensor weight, int32_t reduction, int64_t ignore_index, mt_tensor* out) {
  MT_TRY
  check_reduction(reduction);
  *out = mt::wrap(at::nll_loss_nd(mt::T(input), mt::T(target), mt::opt_t(weight), reduction, ignore_index));
  MT_END
}
