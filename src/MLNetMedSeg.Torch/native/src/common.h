// Internal helpers shared by every translation unit of the shim.
//
// ABI rules (see include/medseg_torch.h):
//  * every entry point is `MT_API int mt_xxx(..., out-params)` and returns an MT_* status code;
//  * no C++ exception ever crosses the ABI: bodies are wrapped in MT_TRY ... MT_END, which turns any
//    exception into a status code plus a thread-local message (mt_last_error);
//  * tensors are opaque `at::Tensor*` handles: returned handles are owned by the caller (free with
//    mt_tensor_free), input handles are borrowed; a function that yields an undefined tensor returns NULL.
#pragma once
#include "pch.h"
#include <atomic>
#include <optional>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

// libtorch 2.x made c10::optional an alias of std::optional and later deprecated the c10 names; 1.13 has its own
// class, which std::nullopt does not convert to. The shim spells optionals as mt::optional / mt::nullopt.
namespace mt {
#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
template <class T> using optional = std::optional<T>;
inline constexpr std::nullopt_t nullopt = std::nullopt;
#else
template <class T> using optional = c10::optional<T>;
inline constexpr c10::nullopt_t nullopt = c10::nullopt;
#endif
}  // namespace mt

#define MT_API extern "C" __attribute__((visibility("default")))

// Bump whenever an entry point's signature or meaning changes; C# checks it at load time.
#define MT_ABI_VERSION 2

typedef at::Tensor* mt_tensor;
typedef at::Generator* mt_generator;

// A scalar passed by value. kind: -1 = none (optional absent), 0 = double, 1 = int64, 2 = bool.
typedef struct mt_scalar {
  int32_t kind;
  int32_t _pad;
  double f;
  int64_t i;
} mt_scalar;

enum mt_status : int32_t {
  MT_OK = 0,
  MT_ERR = 1,               // generic c10::Error / std::exception
  MT_ERR_OOM = 2,           // out of memory (host or device)
  MT_ERR_INDEX = 3,         // c10::IndexError, std::out_of_range
  MT_ERR_VALUE = 4,         // c10::ValueError, std::invalid_argument
  MT_ERR_TYPE = 5,          // c10::TypeError
  MT_ERR_NOT_IMPLEMENTED = 6,
  MT_ERR_UNKNOWN = 7,       // a non-std exception
};

namespace mt {

extern std::atomic<int64_t> g_live_tensors;

// Translate the exception being handled into a status code and store its message. noexcept.
int32_t translate_exception() noexcept;
void set_error(const char* msg) noexcept;

inline mt_tensor wrap(at::Tensor t) {
  if (!t.defined()) return nullptr;
  auto* h = new at::Tensor(std::move(t));
  g_live_tensors.fetch_add(1, std::memory_order_relaxed);
  return h;
}

inline const at::Tensor& T(mt_tensor h) {
  if (h == nullptr) throw std::invalid_argument("a tensor argument is null (disposed or never created)");
  return *h;
}

// NULL handle -> undefined tensor (optional argument absent).
inline at::Tensor opt(mt_tensor h) { return h ? *h : at::Tensor(); }
inline mt::optional<at::Tensor> opt_t(mt_tensor h) {
  return h ? mt::optional<at::Tensor>(*h) : mt::nullopt;
}

inline at::Scalar scalar(mt_scalar s) {
  switch (s.kind) {
    case 1: return at::Scalar(static_cast<int64_t>(s.i));
    case 2: return at::Scalar(s.i != 0);
    case 0: return at::Scalar(s.f);
    default: throw std::invalid_argument("a required scalar argument is missing");
  }
}
inline mt::optional<at::Scalar> opt_scalar(mt_scalar s) {
  if (s.kind < 0) return mt::nullopt;
  return scalar(s);
}
inline mt_scalar to_mt(const at::Scalar& s) {
  mt_scalar r{};
  if (s.isBoolean()) { r.kind = 2; r.i = s.toBool() ? 1 : 0; }
  else if (s.isIntegral(false)) { r.kind = 1; r.i = s.toLong(); }
  else { r.kind = 0; r.f = s.toDouble(); }
  return r;
}

inline at::IntArrayRef ints(const int64_t* p, int64_t n) {
  if (n < 0) throw std::invalid_argument("negative array length");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

inline at::Device device(int32_t type, int32_t index) {
  return at::Device(static_cast<c10::DeviceType>(type), static_cast<c10::DeviceIndex>(index));
}

inline at::ScalarType dtype(int32_t t) { return static_cast<at::ScalarType>(t); }
// dtype < 0 means "not given".
inline mt::optional<at::ScalarType> opt_dtype(int32_t t) {
  return t < 0 ? mt::nullopt : mt::optional<at::ScalarType>(static_cast<at::ScalarType>(t));
}

inline at::TensorOptions options(int32_t dt, int32_t dev_type, int32_t dev_index, bool requires_grad = false) {
  return at::TensorOptions().dtype(dtype(dt)).device(device(dev_type, dev_index)).requires_grad(requires_grad);
}

inline std::vector<at::Tensor> tensors(const mt_tensor* p, int64_t n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v.push_back(T(p[k]));
  return v;
}

// Hand a list of tensors to the caller as a malloc'ed array of handles (free it with mt_free_buffer).
inline void return_list(std::vector<at::Tensor> v, mt_tensor** out, int64_t* count) {
  auto* arr = static_cast<mt_tensor*>(std::malloc(sizeof(mt_tensor) * (v.empty() ? 1 : v.size())));
  if (!arr) throw std::bad_alloc();
  for (size_t k = 0; k < v.size(); ++k) arr[k] = wrap(std::move(v[k]));
  *out = arr;
  *count = static_cast<int64_t>(v.size());
}

inline at::Generator* gen_or_null(mt_generator g) { return g; }
inline mt::optional<at::Generator> opt_gen(mt_generator g) {
  return g ? mt::optional<at::Generator>(*g) : mt::nullopt;
}

}  // namespace mt

#define MT_TRY try {
#define MT_END \
  return MT_OK; \
  } catch (...) { return mt::translate_exception(); }

// Boilerplate for the most common shapes of entry points.
// out = f(a)
#define MT_UNARY(name, expr)                                             \
  MT_API int32_t mt_##name(mt_tensor a_, mt_tensor* out) {               \
    MT_TRY const at::Tensor& a = mt::T(a_); *out = mt::wrap(expr); MT_END \
  }
// a.f_() in place
#define MT_UNARY_(name, expr)                                 \
  MT_API int32_t mt_##name(mt_tensor a_) {                    \
    MT_TRY const at::Tensor& a = mt::T(a_); (void)(expr); MT_END \
  }
// out = f(a, b)
#define MT_BINARY(name, expr)                                                                    \
  MT_API int32_t mt_##name(mt_tensor a_, mt_tensor b_, mt_tensor* out) {                         \
    MT_TRY const at::Tensor& a = mt::T(a_); const at::Tensor& b = mt::T(b_); *out = mt::wrap(expr); MT_END \
  }
// out = f(a, scalar s)
#define MT_BINARY_S(name, expr)                                                                         \
  MT_API int32_t mt_##name(mt_tensor a_, mt_scalar s_, mt_tensor* out) {                                \
    MT_TRY const at::Tensor& a = mt::T(a_); at::Scalar s = mt::scalar(s_); *out = mt::wrap(expr); MT_END \
  }
