// Activation functions (torch.nn.functional.relu, gelu, softmax, ...). Entry points are prefixed mt_nn_.
#include "common.h"

MT_UNARY(nn_relu, at::relu(a))
MT_UNARY_(nn_relu_, a.relu_())
MT_UNARY(nn_silu, at::silu(a))
MT_API int32_t mt_nn_silu_(mt_tensor a) { MT_TRY at::Tensor t = mt::T(a); at::silu_(t); MT_END }
MT_UNARY(nn_sigmoid, at::sigmoid(a))
MT_UNARY_(nn_sigmoid_, a.sigmoid_())
MT_UNARY(nn_tanh, at::tanh(a))
MT_UNARY_(nn_tanh_, a.tanh_())

MT_API int32_t mt_nn_leaky_relu(mt_tensor a, double negative_slope, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::leaky_relu(mt::T(a), negative_slope)); MT_END
}
MT_API int32_t mt_nn_leaky_relu_(mt_tensor a, double negative_slope) {
  MT_TRY at::Tensor t = mt::T(a); at::leaky_relu_(t, negative_slope); MT_END
}

// approximate: 0 = "none" (exact erf form), 1 = "tanh".
MT_API int32_t mt_nn_gelu(mt_tensor a, int32_t approximate, mt_tensor* out) {
  MT_TRY
  if (approximate != 0 && approximate != 1) throw std::invalid_argument("gelu: approximate must be 'none' or 'tanh'");
  *out = mt::wrap(at::gelu(mt::T(a), approximate == 1 ? "tanh" : "none"));
  MT_END
}

// dtype < 0: keep the input's dtype.
MT_API int32_t mt_nn_softmax(mt_tensor a, int64_t dim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::softmax(mt::T(a), dim, mt::opt_dtype(dtype))); MT_END
}
MT_API int32_t mt_nn_log_softmax(mt_tensor a, int64_t dim, int32_t dtype, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::log_softmax(mt::T(a), dim, mt::opt_dtype(dtype))); MT_END
}

MT_API int32_t mt_nn_softplus(mt_tensor a, double beta, double threshold, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::softplus(mt::T(a), beta, threshold)); MT_END
}
MT_API int32_t mt_nn_hardtanh(mt_tensor a, double min_val, double max_val, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::hardtanh(mt::T(a), min_val, max_val)); MT_END
}
MT_API int32_t mt_nn_hardtanh_(mt_tensor a, double min_val, double max_val) {
  MT_TRY at::Tensor t = mt::T(a); at::hardtanh_(t, min_val, max_val); MT_END
}
