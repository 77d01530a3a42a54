// Shape and layout (views, reshapes, joins, splits), gathers and scatters, masks, padding, one-hot,
// and Python-style indexing through at::indexing::TensorIndex.
#include "common.h"

#include <ATen/TensorIndexing.h>

// ---- views and reshapes
MT_API int32_t mt_reshape(mt_tensor a, const int64_t* shape, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::reshape(mt::T(a), mt::ints(shape, n))); MT_END
}
MT_API int32_t mt_view(mt_tensor a, const int64_t* shape, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(mt::T(a).view(mt::ints(shape, n))); MT_END
}
MT_API int32_t mt_permute(mt_tensor a, const int64_t* dims, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::permute(mt::T(a), mt::ints(dims, n))); MT_END
}
MT_API int32_t mt_transpose(mt_tensor a, int64_t dim0, int64_t dim1, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::transpose(mt::T(a), dim0, dim1)); MT_END
}
MT_UNARY(t, at::t(a))
MT_API int32_t mt_flatten(mt_tensor a, int64_t start_dim, int64_t end_dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::flatten(mt::T(a), start_dim, end_dim)); MT_END
}
MT_API int32_t mt_unflatten(mt_tensor a, int64_t dim, const int64_t* sizes, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::unflatten(mt::T(a), dim, mt::ints(sizes, n))); MT_END
}
MT_UNARY(squeeze, at::squeeze(a))
MT_API int32_t mt_squeeze_dim(mt_tensor a, int64_t dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::squeeze(mt::T(a), dim)); MT_END
}
MT_API int32_t mt_unsqueeze(mt_tensor a, int64_t dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::unsqueeze(mt::T(a), dim)); MT_END
}
MT_API int32_t mt_expand(mt_tensor a, const int64_t* sizes, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(mt::T(a).expand(mt::ints(sizes, n))); MT_END
}
MT_BINARY(expand_as, a.expand_as(b))
MT_API int32_t mt_broadcast_to(mt_tensor a, const int64_t* sizes, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::broadcast_to(mt::T(a), mt::ints(sizes, n))); MT_END
}
MT_API int32_t mt_repeat(mt_tensor a, const int64_t* repeats, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(mt::T(a).repeat(mt::ints(repeats, n))); MT_END
}
MT_API int32_t mt_flip(mt_tensor a, const int64_t* dims, int64_t n, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::flip(mt::T(a), mt::ints(dims, n))); MT_END
}
// dims may be empty (n_dims == 0): roll the flattened tensor and restore the shape.
MT_API int32_t mt_roll(mt_tensor a, const int64_t* shifts, int64_t n_shifts, const int64_t* dims, int64_t n_dims, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::roll(mt::T(a), mt::ints(shifts, n_shifts), mt::ints(dims, n_dims))); MT_END
}
MT_API int32_t mt_narrow(mt_tensor a, int64_t dim, int64_t start, int64_t length, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::narrow(mt::T(a), dim, start, length)); MT_END
}

// ---- joins and splits (lists come back through mt::return_list; free the array with mt_free_buffer)
MT_API int32_t mt_cat(const mt_tensor* ts, int64_t n, int64_t dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::cat(mt::tensors(ts, n), dim)); MT_END
}
MT_API int32_t mt_stack(const mt_tensor* ts, int64_t n, int64_t dim, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::stack(mt::tensors(ts, n), dim)); MT_END
}
MT_API int32_t mt_chunk(mt_tensor a, int64_t chunks, int64_t dim, mt_tensor** out, int64_t* count) {
  MT_TRY mt::return_list(at::chunk(mt::T(a), chunks, dim), out, count); MT_END
}
MT_API int32_t mt_split(mt_tensor a, int64_t split_size, int64_t dim, mt_tensor** out, int64_t* count) {
  MT_TRY mt::return_list(at::split(mt::T(a), split_size, dim), out, count); MT_END
}
MT_API int32_t mt_split_with_sizes(mt_tensor a, const int64_t* sizes, int64_t n, int64_t dim, mt_tensor** out, int64_t* count) {
  MT_TRY mt::return_list(at::split_with_sizes(mt::T(a), mt::ints(sizes, n), dim), out, count); MT_END
}
MT_API int32_t mt_unbind(mt_tensor a, int64_t dim, mt_tensor** out, int64_t* count) {
  MT_TRY mt::return_list(at::unbind(mt::T(a), dim), out, count); MT_END
}

// ---- gathers, scatters and masks
MT_API int32_t mt_index_select(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::index_select(mt::T(a), dim, mt::T(index))); MT_END
}
MT_API int32_t mt_gather(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::gather(mt::T(a), dim, mt::T(index))); MT_END
}
MT_API int32_t mt_scatter(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor src, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::scatter(mt::T(a), dim, mt::T(index), mt::T(src))); MT_END
}
MT_API int32_t mt_scatter_(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor src) {
  MT_TRY mt::T(a).scatter_(dim, mt::T(index), mt::T(src)); MT_END
}
MT_API int32_t mt_scatter_scalar(mt_tensor a, int64_t dim, mt_tensor index, mt_scalar value, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::scatter(mt::T(a), dim, mt::T(index), mt::scalar(value))); MT_END
}
MT_API int32_t mt_scatter_scalar_(mt_tensor a, int64_t dim, mt_tensor index, mt_scalar value) {
  MT_TRY mt::T(a).scatter_(dim, mt::T(index), mt::scalar(value)); MT_END
}
MT_API int32_t mt_scatter_add(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor src, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::scatter_add(mt::T(a), dim, mt::T(index), mt::T(src))); MT_END
}
MT_API int32_t mt_scatter_add_(mt_tensor a, int64_t dim, mt_tensor index, mt_tensor src) {
  MT_TRY mt::T(a).scatter_add_(dim, mt::T(index), mt::T(src)); MT_END
}
MT_API int32_t mt_masked_fill(mt_tensor a, mt_tensor mask, mt_scalar value, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::masked_fill(mt::T(a), mt::T(mask), mt::scalar(value))); MT_END
}
MT_API int32_t mt_masked_fill_(mt_tensor a, mt_tensor mask, mt_scalar value) {
  MT_TRY mt::T(a).masked_fill_(mt::T(mask), mt::scalar(value)); MT_END
}
// value: a 0-dimensional tensor
MT_API int32_t mt_masked_fill_tensor(mt_tensor a, mt_tensor mask, mt_tensor value, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::masked_fill(mt::T(a), mt::T(mask), mt::T(value))); MT_END
}
MT_API int32_t mt_masked_fill_tensor_(mt_tensor a, mt_tensor mask, mt_tensor value) {
  MT_TRY mt::T(a).masked_fill_(mt::T(mask), mt::T(value)); MT_END
}
MT_BINARY(masked_select, at::masked_select(a, b))
MT_UNARY(nonzero, at::nonzero(a))

// ---- padding and one-hot
// mode: 0 constant, 1 reflect, 2 replicate, 3 circular. `pad` lists (before, after) pairs from the last dimension.
MT_API int32_t mt_pad(mt_tensor a, const int64_t* pad, int64_t n, int32_t mode, double value, mt_tensor* out) {
  MT_TRY
  const char* m;
  switch (mode) {
    case 0: m = "constant"; break;
    case 1: m = "reflect"; break;
    case 2: m = "replicate"; break;
    case 3: m = "circular"; break;
    default: throw std::invalid_argument("unknown padding mode " + std::to_string(mode));
  }
  mt::optional<double> v = mode == 0 ? mt::optional<double>(value) : mt::nullopt;
  *out = mt::wrap(at::pad(mt::T(a), mt::ints(pad, n), m, v));
  MT_END
}
MT_API int32_t mt_one_hot(mt_tensor a, int64_t num_classes, mt_tensor* out) {
  MT_TRY *out = mt::wrap(at::one_hot(mt::T(a), num_classes)); MT_END
}

// ---- Python-style indexing.
// Index k is described by kinds[k] and, where used, ints[3k..3k+2] / has[k] / tensors[k]:
//   0 None (new axis), 1 Ellipsis, 2 single integer ints[3k], 3 bool ints[3k] != 0,
//   4 slice (start ints[3k] if has&1, stop ints[3k+1] if has&2, step ints[3k+2] if has&4), 5 tensor tensors[k].
static std::vector<at::indexing::TensorIndex> make_indices(const int32_t* kinds, const int64_t* ints, const int32_t* has,
                                                            const mt_tensor* tensors, int64_t n) {
  using namespace at::indexing;
  if (n < 0) throw std::invalid_argument("negative index count");
  std::vector<TensorIndex> v;
  v.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const int64_t* p = ints + 3 * k;
    switch (kinds[k]) {
      case 0: v.emplace_back(None); break;
      case 1: v.emplace_back(Ellipsis); break;
      case 2: v.emplace_back(p[0]); break;
      case 3: v.emplace_back(p[0] != 0); break;
      case 4: {
        // Absent parts take Python's defaults for a positive step (0, end, 1); libtorch rejects other steps.
        // Plain int64 arguments convert to Slice's optional<int64_t> (1.13) and optional<SymInt> (2.x) alike.
        int32_t h = has[k];
        int64_t start = (h & 1) ? p[0] : 0;
        int64_t stop = (h & 2) ? p[1] : INDEX_MAX;
        int64_t step = (h & 4) ? p[2] : 1;
        v.emplace_back(Slice(start, stop, step));
        break;
      }
      case 5: v.emplace_back(mt::T(tensors[k])); break;
      default: throw std::invalid_argument("unknown index kind " + std::to_string(kinds[k]));
    }
  }
  return v;
}

MT_API int32_t mt_index(mt_tensor a, const int32_t* kinds, const int64_t* ints, const int32_t* has, const mt_tensor* tensors,
                        int64_t n, mt_tensor* out) {
  MT_TRY
  auto idx = make_indices(kinds, ints, has, tensors, n);
  *out = mt::wrap(mt::T(a).index(idx));
  MT_END
}
MT_API int32_t mt_index_put_(mt_tensor a, const int32_t* kinds, const int64_t* ints, const int32_t* has, const mt_tensor* tensors,
                             int64_t n, mt_tensor value) {
  MT_TRY
  auto idx = make_indices(kinds, ints, has, tensors, n);
  at::Tensor self = mt::T(a);
  self.index_put_(idx, mt::T(value));
  MT_END
}
MT_API int32_t mt_index_put_scalar_(mt_tensor a, const int32_t* kinds, const int64_t* ints, const int32_t* has,
                                    const mt_tensor* tensors, int64_t n, mt_scalar value) {
  MT_TRY
  auto idx = make_indices(kinds, ints, has, tensors, n);
  at::Tensor self = mt::T(a);
  self.index_put_(idx, mt::scalar(value));
  MT_END
}
