// Core of the shim: errors, versions, threads, global modes (grad / inference / autocast),
// devices, generators, tensor lifetime, metadata, creation and managed-memory transfer.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <cstdlib>
#include <cstring>
#include <memory>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#ifdef MT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#define MT_STR2(x) #x
#define MT_STR(x) MT_STR2(x)

namespace mt {

// ---------------------------------------------------------------- CPU allocator policy (glibc)
// libtorch allocates CPU tensors with posix_memalign. With glibc's defaults, blocks above the (dynamic) mmap
// threshold are mmap'ed and unmapped again on free, and freed heap memory above 128 KiB at the top is trimmed, so
// a training step or a sampling loop keeps asking the kernel for fresh zeroed pages: every activation of every step
// is page-faulted in again (~20k faults per seg_step_linknet step, ~20k per diffusion U-Net forward), and with
// several intra-op threads the faults of one parallel kernel serialise in the kernel. Which tensors hit this
// depends on the order of allocations and frees, which differs between our dispose scopes and CPython's reference
// counting, so the same network can pay very different page-fault bills on the two sides. Keeping the memory in
// the process (as jemalloc/tcmalloc, commonly recommended for PyTorch on CPU, do) removes most of those faults:
// blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap and freed memory is kept for reuse up to
// 1 GiB at the top of the heap. The cost: the process's resident memory stays at its peak instead of shrinking.
// Applied once when the shim is loaded; MEDSEG_MALLOC_TUNING=0 leaves glibc's defaults, and explicit glibc malloc
// settings in the environment (GLIBC_TUNABLES glibc.malloc.*, MALLOC_*_ variables) always win.
static bool env_sets_malloc() {
  const char* t = std::getenv("GLIBC_TUNABLES");
  if (t && std::strstr(t, "glibc.malloc.")) return true;
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"})
    if (std::getenv(v)) return true;
  return false;
}

static void tune_malloc() noexcept {
#if defined(__GLIBC__)
  const char* e = std::getenv("MEDSEG_MALLOC_TUNING");
  if ((e && std::strcmp(e, "0") == 0) || env_sets_malloc()) return;
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

[[maybe_unused]] static const bool g_malloc_tuning_applied = (tune_malloc(), true);

std::atomic<int64_t> g_live_tensors{0};
static thread_local std::string t_last_error;

void set_error(const char* msg) noexcept {
  try { t_last_error = msg ? msg : ""; } catch (...) { /* keep the previous text */ }
}

int32_t translate_exception() noexcept {
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    set_error(e.what_without_backtrace()); return MT_ERR_OOM;
  } catch (const c10::IndexError& e) {
    set_error(e.what_without_backtrace()); return MT_ERR_INDEX;
  } catch (const c10::ValueError& e) {
    set_error(e.what_without_backtrace()); return MT_ERR_VALUE;
  } catch (const c10::TypeError& e) {
    set_error(e.what_without_backtrace()); return MT_ERR_TYPE;
  } catch (const c10::NotImplementedError& e) {
    set_error(e.what_without_backtrace()); return MT_ERR_NOT_IMPLEMENTED;
  } catch (const c10::Error& e) {
    // libtorch 1.13 reports CPU allocation failures as a plain c10::Error.
    const char* m = e.what_without_backtrace();
    set_error(m);
    if (m && (std::strstr(m, "not enough memory") || std::strstr(m, "out of memory") ||
              std::strstr(m, "can't allocate memory") || std::strstr(m, "Cannot allocate memory")))
      return MT_ERR_OOM;
    return MT_ERR;
  } catch (const std::bad_alloc& e) {
    set_error("out of memory (std::bad_alloc)"); return MT_ERR_OOM;
  } catch (const std::out_of_range& e) {
    set_error(e.what()); return MT_ERR_INDEX;
  } catch (const std::invalid_argument& e) {
    set_error(e.what()); return MT_ERR_VALUE;
  } catch (const std::exception& e) {
    set_error(e.what()); return MT_ERR;
  } catch (...) {
    set_error("unknown native exception"); return MT_ERR_UNKNOWN;
  }
}

static thread_local std::vector<std::unique_ptr<c10::InferenceMode>> t_inference_stack;

}  // namespace mt

// ---------------------------------------------------------------- errors, versions, threads

// The message of the last failed call on this thread; valid until the next failing call on it.
MT_API const char* mt_last_error() { return mt::t_last_error.c_str(); }

MT_API int32_t mt_abi_version() { return MT_ABI_VERSION; }

// "major.minor.patch" of the libtorch the shim was compiled against, plus "+cuda" when built with CUDA.
MT_API const char* mt_torch_version() {
#ifdef MT_WITH_CUDA
  return MT_STR(TORCH_VERSION_MAJOR) "." MT_STR(TORCH_VERSION_MINOR) "." MT_STR(TORCH_VERSION_PATCH) "+cuda";
#else
  return MT_STR(TORCH_VERSION_MAJOR) "." MT_STR(TORCH_VERSION_MINOR) "." MT_STR(TORCH_VERSION_PATCH);
#endif
}

MT_API int64_t mt_live_tensors() { return mt::g_live_tensors.load(); }

MT_API void mt_free_buffer(void* p) { std::free(p); }

MT_API int32_t mt_set_num_threads(int32_t n) { MT_TRY at::set_num_threads(n); MT_END }
MT_API int32_t mt_get_num_threads(int32_t* out) { MT_TRY *out = at::get_num_threads(); MT_END }
MT_API int32_t mt_set_num_interop_threads(int32_t n) { MT_TRY at::set_num_interop_threads(n); MT_END }

// Seeds the default generators of every device (CPU and each CUDA device).
MT_API int32_t mt_manual_seed(uint64_t seed) { MT_TRY at::manual_seed(seed); MT_END }

// ---------------------------------------------------------------- grad / inference / autocast modes

MT_API int32_t mt_set_grad_enabled(bool enabled, bool* previous) {
  MT_TRY
  if (previous) *previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(enabled);
  MT_END
}
MT_API bool mt_is_grad_enabled() { return at::GradMode::is_enabled(); }

// Inference mode is a scoped state in libtorch; the shim keeps the guards on a per-thread stack so
// that callers need only push/pop calls (no heap-allocated guard objects cross the ABI).
MT_API int32_t mt_inference_mode_push(bool enabled) {
  MT_TRY mt::t_inference_stack.emplace_back(std::make_unique<c10::InferenceMode>(enabled)); MT_END
}
MT_API int32_t mt_inference_mode_pop() {
  MT_TRY
  if (mt::t_inference_stack.empty()) throw std::logic_error("inference mode pop without a matching push on this thread");
  mt::t_inference_stack.pop_back();
  MT_END
}
MT_API bool mt_is_inference_mode() { return c10::InferenceMode::is_enabled(); }

// libtorch 2.4 replaced the per-device autocast switches by device-typed ones.
#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define MT_AUTOCAST_DEVICE_TYPED 1
#endif

static bool autocast_is_enabled(c10::DeviceType dt) {
#ifdef MT_AUTOCAST_DEVICE_TYPED
  return at::autocast::is_autocast_enabled(dt);
#else
  return dt == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}
static void autocast_set_enabled(c10::DeviceType dt, bool on) {
#ifdef MT_AUTOCAST_DEVICE_TYPED
  at::autocast::set_autocast_enabled(dt, on);
#else
  if (dt == c10::DeviceType::CPU) at::autocast::set_cpu_enabled(on); else at::autocast::set_enabled(on);
#endif
}
static at::ScalarType autocast_get_dtype(c10::DeviceType dt) {
#ifdef MT_AUTOCAST_DEVICE_TYPED
  return at::autocast::get_autocast_dtype(dt);
#else
  return dt == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}
static void autocast_set_dtype(c10::DeviceType dt, at::ScalarType st) {
#ifdef MT_AUTOCAST_DEVICE_TYPED
  at::autocast::set_autocast_dtype(dt, st);
#else
  if (dt == c10::DeviceType::CPU) at::autocast::set_autocast_cpu_dtype(st); else at::autocast::set_autocast_gpu_dtype(st);
#endif
}

// Enter an autocast region for a device type (0 = CPU, 1 = CUDA); returns the previous state for mt_autocast_exit.
MT_API int32_t mt_autocast_enter(int32_t device_type, bool enabled, int32_t dtype, bool* prev_enabled, int32_t* prev_dtype) {
  MT_TRY
  auto dt = static_cast<c10::DeviceType>(device_type);
  if (dt != c10::DeviceType::CPU && dt != c10::DeviceType::CUDA)
    throw std::invalid_argument("autocast supports the cpu and cuda device types only");
  auto st = mt::dtype(dtype);
  if (dt == c10::DeviceType::CPU && st != at::kBFloat16)
    throw std::invalid_argument("CPU autocast supports bfloat16 only");
  if (dt == c10::DeviceType::CUDA && st != at::kBFloat16 && st != at::kHalf)
    throw std::invalid_argument("CUDA autocast supports float16 and bfloat16 only");
  *prev_enabled = autocast_is_enabled(dt);
  *prev_dtype = static_cast<int32_t>(autocast_get_dtype(dt));
  autocast_set_enabled(dt, enabled);
  autocast_set_dtype(dt, st);
  at::autocast::increment_nesting();
  MT_END
}
MT_API int32_t mt_autocast_exit(int32_t device_type, bool prev_enabled, int32_t prev_dtype) {
  MT_TRY
  auto dt = static_cast<c10::DeviceType>(device_type);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  autocast_set_enabled(dt, prev_enabled);
  autocast_set_dtype(dt, mt::dtype(prev_dtype));
  MT_END
}
MT_API bool mt_autocast_is_enabled(int32_t device_type) {
  return autocast_is_enabled(static_cast<c10::DeviceType>(device_type));
}

// ---------------------------------------------------------------- CUDA

MT_API bool mt_cuda_is_available() {
  try { return torch::cuda::is_available(); } catch (...) { return false; }
}
MT_API int32_t mt_cuda_device_count() {
  try { return static_cast<int32_t>(torch::cuda::device_count()); } catch (...) { return 0; }
}
MT_API int32_t mt_cuda_synchronize(int32_t device_index) {
  MT_TRY
  if (!torch::cuda::is_available()) throw std::invalid_argument("CUDA is not available in this build or on this machine");
  torch::cuda::synchronize(device_index);
  MT_END
}
// Releases the cached, unused blocks of the CUDA caching allocator. A no-op in a CPU-only build.
MT_API int32_t mt_cuda_empty_cache() {
  MT_TRY
#ifdef MT_WITH_CUDA
  if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  MT_END
}

// Bytes held by live tensors on a CUDA device (the caching allocator's "allocated", not its reserved pool); 0 in a
// CPU-only build. For leak checks: the figure must return to its baseline once a loop's tensors are disposed.
MT_API int32_t mt_cuda_memory_allocated(int32_t device_index, int64_t* out) {
  MT_TRY
  *out = 0;
#ifdef MT_WITH_CUDA
  if (torch::cuda::is_available()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device_index));
    // Index 0 is StatType::AGGREGATE in every version (the enum moved namespaces in 2.x, so it is not named here).
    *out = stats.allocated_bytes[0].current;
  }
#endif
  MT_END
}

// cuDNN algorithm choice: deterministic kernels only, and benchmarking (autotuning per shape, not reproducible).
MT_API bool mt_cudnn_deterministic() { return at::globalContext().deterministicCuDNN(); }
MT_API int32_t mt_set_cudnn_deterministic(bool on) { MT_TRY at::globalContext().setDeterministicCuDNN(on); MT_END }
MT_API bool mt_cudnn_benchmark() { return at::globalContext().benchmarkCuDNN(); }
MT_API int32_t mt_set_cudnn_benchmark(bool on) { MT_TRY at::globalContext().setBenchmarkCuDNN(on); MT_END }

// ---------------------------------------------------------------- generators

// A new generator for a device (0 = CPU, 1 = CUDA) seeded with `seed`. Free with mt_generator_free.
MT_API int32_t mt_generator_new(int32_t device_type, int32_t device_index, uint64_t seed, mt_generator* out) {
  MT_TRY
  auto dev = mt::device(device_type, device_index);
  at::Generator g;
  if (dev.is_cpu()) {
    g = at::detail::createCPUGenerator(seed);
  } else {
    // Clone the device's default generator so that no CUDA header is needed, then reseed it.
    g = at::globalContext().defaultGenerator(dev).clone();
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(seed);
  }
  *out = new at::Generator(std::move(g));
  MT_END
}
// A handle to the device's default (global) generator.
MT_API int32_t mt_generator_default(int32_t device_type, int32_t device_index, mt_generator* out) {
  MT_TRY *out = new at::Generator(at::globalContext().defaultGenerator(mt::device(device_type, device_index))); MT_END
}
MT_API void mt_generator_free(mt_generator g) { delete g; }
MT_API int32_t mt_generator_manual_seed(mt_generator g, uint64_t seed) {
  MT_TRY
  if (!g) throw std::invalid_argument("generator is null");
  std::lock_guard<std::mutex> lock(g->mutex());
  g->set_current_seed(seed);
  MT_END
}
MT_API int32_t mt_generator_initial_seed(mt_generator g, uint64_t* out) {
  MT_TRY if (!g) throw std::invalid_argument("generator is null"); *out = g->current_seed(); MT_END
}
MT_API int32_t mt_generator_get_state(mt_generator g, mt_tensor* out) {
  MT_TRY
  if (!g) throw std::invalid_argument("generator is null");
  std::lock_guard<std::mutex> lock(g->mutex());
  *out = mt::wrap(g->get_state());
  MT_END
}
MT_API int32_t mt_generator_set_state(mt_generator g, mt_tensor state) {
  MT_TRY
  if (!g) throw std::invalid_argument("generator is null");
  std::lock_guard<std::mutex> lock(g->mutex());
  g->set_state(mt::T(state));
  MT_END
}

// ---------------------------------------------------------------- tensor lifetime and metadata

MT_API void mt_tensor_free(mt_tensor t) {
  if (t) {
    delete t;
    mt::g_live_tensors.fetch_sub(1, std::memory_order_relaxed);
  }
}
// A second handle to the same tensor (shares storage and autograd identity).
MT_API int32_t mt_tensor_alias(mt_tensor t, mt_tensor* out) { MT_TRY *out = mt::wrap(mt::T(t)); MT_END }

MT_API int32_t mt_tensor_dim(mt_tensor t, int64_t* out) { MT_TRY *out = mt::T(t).dim(); MT_END }
// Writes min(dim, cap) sizes.
MT_API int32_t mt_tensor_shape(mt_tensor t, int64_t* sizes, int64_t cap) {
  MT_TRY
  auto s = mt::T(t).sizes();
  for (int64_t k = 0; k < static_cast<int64_t>(s.size()) && k < cap; ++k) sizes[k] = s[k];
  MT_END
}
MT_API int32_t mt_tensor_strides(mt_tensor t, int64_t* strides, int64_t cap) {
  MT_TRY
  auto s = mt::T(t).strides();
  for (int64_t k = 0; k < static_cast<int64_t>(s.size()) && k < cap; ++k) strides[k] = s[k];
  MT_END
}
MT_API int32_t mt_tensor_numel(mt_tensor t, int64_t* out) { MT_TRY *out = mt::T(t).numel(); MT_END }
MT_API int32_t mt_tensor_dtype(mt_tensor t, int32_t* out) { MT_TRY *out = static_cast<int32_t>(mt::T(t).scalar_type()); MT_END }
MT_API int32_t mt_tensor_device(mt_tensor t, int32_t* type, int32_t* index) {
  MT_TRY
  auto d = mt::T(t).device();
  *type = static_cast<int32_t>(d.type());
  *index = d.has_index() ? d.index() : (d.is_cpu() ? -1 : 0);
  MT_END
}
MT_API int32_t mt_tensor_requires_grad(mt_tensor t, bool* out) { MT_TRY *out = mt::T(t).requires_grad(); MT_END }
MT_API int32_t mt_tensor_set_requires_grad(mt_tensor t, bool value) { MT_TRY mt::T(t).set_requires_grad(value); MT_END }
MT_API int32_t mt_tensor_is_leaf(mt_tensor t, bool* out) { MT_TRY *out = mt::T(t).is_leaf(); MT_END }
MT_API int32_t mt_tensor_is_contiguous(mt_tensor t, bool* out) { MT_TRY *out = mt::T(t).is_contiguous(); MT_END }
MT_API int32_t mt_tensor_element_size(mt_tensor t, int64_t* out) { MT_TRY *out = mt::T(t).element_size(); MT_END }
MT_API int32_t mt_tensor_is_inference(mt_tensor t, bool* out) { MT_TRY *out = mt::T(t).is_inference(); MT_END }

// ---------------------------------------------------------------- creation

// at:: factory functions ignore TensorOptions::requires_grad (only torch:: ones honour it): set it afterwards.
#define MT_OPTS mt::options(dtype, device_type, device_index)
static inline mt_tensor finish(at::Tensor t, bool requires_grad) {
  if (requires_grad) t.set_requires_grad(true);
  return mt::wrap(std::move(t));
}
#define MT_CREATE_ARGS int32_t dtype, int32_t device_type, int32_t device_index, bool requires_grad, mt_tensor* out

MT_API int32_t mt_empty(const int64_t* shape, int64_t ndim, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::empty(mt::ints(shape, ndim), MT_OPTS), requires_grad); MT_END
}
MT_API int32_t mt_zeros(const int64_t* shape, int64_t ndim, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::zeros(mt::ints(shape, ndim), MT_OPTS), requires_grad); MT_END
}
MT_API int32_t mt_ones(const int64_t* shape, int64_t ndim, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::ones(mt::ints(shape, ndim), MT_OPTS), requires_grad); MT_END
}
MT_API int32_t mt_full(const int64_t* shape, int64_t ndim, mt_scalar value, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::full(mt::ints(shape, ndim), mt::scalar(value), MT_OPTS), requires_grad); MT_END
}
// Random creation draws from `gen` (NULL = the device's default generator).
MT_API int32_t mt_rand(const int64_t* shape, int64_t ndim, mt_generator gen, MT_CREATE_ARGS) {
  MT_TRY
  auto t = at::rand(mt::ints(shape, ndim), mt::opt_gen(gen), mt::options(dtype, device_type, device_index));
  t.set_requires_grad(requires_grad);
  *out = mt::wrap(std::move(t));
  MT_END
}
MT_API int32_t mt_randn(const int64_t* shape, int64_t ndim, mt_generator gen, MT_CREATE_ARGS) {
  MT_TRY
  auto t = at::randn(mt::ints(shape, ndim), mt::opt_gen(gen), mt::options(dtype, device_type, device_index));
  t.set_requires_grad(requires_grad);
  *out = mt::wrap(std::move(t));
  MT_END
}
// Integers uniformly drawn from [low, high).
MT_API int32_t mt_randint(int64_t low, int64_t high, const int64_t* shape, int64_t ndim, mt_generator gen, MT_CREATE_ARGS) {
  MT_TRY
  *out = mt::wrap(at::randint(low, high, mt::ints(shape, ndim), mt::opt_gen(gen), mt::options(dtype, device_type, device_index)));
  MT_END
}
MT_API int32_t mt_randperm(int64_t n, mt_generator gen, MT_CREATE_ARGS) {
  MT_TRY *out = mt::wrap(at::randperm(n, mt::opt_gen(gen), mt::options(dtype, device_type, device_index))); MT_END
}
MT_API int32_t mt_arange(mt_scalar start, mt_scalar end, mt_scalar step, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::arange(mt::scalar(start), mt::scalar(end), mt::scalar(step), MT_OPTS), requires_grad); MT_END
}
MT_API int32_t mt_linspace(double start, double end, int64_t steps, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::linspace(start, end, steps, MT_OPTS), requires_grad); MT_END
}
MT_API int32_t mt_eye(int64_t n, int64_t m, MT_CREATE_ARGS) {
  MT_TRY *out = finish(at::eye(n, m, MT_OPTS), requires_grad); MT_END
}

// *_like: dtype < 0 keeps the input's dtype.
#define MT_LIKE_OPTS(t) \
  (dtype < 0 ? t.options() : t.options().dtype(mt::dtype(dtype)))
MT_API int32_t mt_zeros_like(mt_tensor a, int32_t dtype, bool requires_grad, mt_tensor* out) {
  MT_TRY const auto& t = mt::T(a); *out = finish(at::zeros_like(t, MT_LIKE_OPTS(t)), requires_grad); MT_END
}
MT_API int32_t mt_ones_like(mt_tensor a, int32_t dtype, bool requires_grad, mt_tensor* out) {
  MT_TRY const auto& t = mt::T(a); *out = finish(at::ones_like(t, MT_LIKE_OPTS(t)), requires_grad); MT_END
}
MT_API int32_t mt_empty_like(mt_tensor a, int32_t dtype, bool requires_grad, mt_tensor* out) {
  MT_TRY const auto& t = mt::T(a); *out = finish(at::empty_like(t, MT_LIKE_OPTS(t)), requires_grad); MT_END
}
MT_API int32_t mt_full_like(mt_tensor a, mt_scalar value, int32_t dtype, bool requires_grad, mt_tensor* out) {
  MT_TRY const auto& t = mt::T(a); *out = finish(at::full_like(t, mt::scalar(value), MT_LIKE_OPTS(t)), requires_grad); MT_END
}
MT_API int32_t mt_rand_like(mt_tensor a, mt_generator gen, int32_t dtype, mt_tensor* out) {
  MT_TRY
  const auto& t = mt::T(a);
  auto r = at::empty_like(t, dtype < 0 ? t.options() : t.options().dtype(mt::dtype(dtype)));
  r.uniform_(0.0, 1.0, mt::opt_gen(gen));
  *out = mt::wrap(std::move(r));
  MT_END
}
MT_API int32_t mt_randn_like(mt_tensor a, mt_generator gen, int32_t dtype, mt_tensor* out) {
  MT_TRY
  const auto& t = mt::T(a);
  auto r = at::empty_like(t, dtype < 0 ? t.options() : t.options().dtype(mt::dtype(dtype)));
  r.normal_(0.0, 1.0, mt::opt_gen(gen));
  *out = mt::wrap(std::move(r));
  MT_END
}

// ---------------------------------------------------------------- managed memory transfer

// A new tensor holding a copy of `nbytes` bytes at `data`, laid out contiguously with the given shape and dtype,
// then moved to the device.
MT_API int32_t mt_from_buffer(const void* data, int64_t nbytes, const int64_t* shape, int64_t ndim,
                              int32_t dtype, int32_t device_type, int32_t device_index, bool requires_grad, mt_tensor* out) {
  MT_TRY
  auto t = at::empty(mt::ints(shape, ndim), at::TensorOptions().dtype(mt::dtype(dtype)));
  int64_t need = t.numel() * static_cast<int64_t>(t.element_size());
  if (need != nbytes)
    throw std::invalid_argument("buffer holds " + std::to_string(nbytes) + " bytes but the shape and dtype need " +
                                std::to_string(need));
  if (need > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(need));
  auto dev = mt::device(device_type, device_index);
  if (!dev.is_cpu()) t = t.to(dev);
  if (requires_grad) t.set_requires_grad(true);
  *out = mt::wrap(std::move(t));
  MT_END
}
// Copies the tensor's elements (row-major, contiguous) to `dst`; nbytes must equal numel * element_size.
MT_API int32_t mt_to_buffer(mt_tensor a, void* dst, int64_t nbytes) {
  MT_TRY
  auto t = mt::T(a).detach();
  if (!t.device().is_cpu()) t = t.to(at::kCPU);
  t = t.contiguous();
  int64_t need = t.numel() * static_cast<int64_t>(t.element_size());
  if (need != nbytes)
    throw std::invalid_argument("destination holds " + std::to_string(nbytes) + " bytes but the tensor has " +
                                std::to_string(need));
  if (need > 0) std::memcpy(dst, t.data_ptr(), static_cast<size_t>(need));
  MT_END
}
MT_API int32_t mt_item(mt_tensor a, mt_scalar* out) { MT_TRY *out = mt::to_mt(mt::T(a).item()); MT_END }

// ---------------------------------------------------------------- conversion, copies, autograd basics

MT_API int32_t mt_to(mt_tensor a, int32_t dtype, int32_t device_type, int32_t device_index, bool non_blocking, bool copy, mt_tensor* out) {
  MT_TRY
  const auto& t = mt::T(a);
  auto st = dtype < 0 ? t.scalar_type() : mt::dtype(dtype);
  auto dev = device_type < 0 ? t.device() : mt::device(device_type, device_index);
  *out = mt::wrap(t.to(dev, st, non_blocking, copy));
  MT_END
}
MT_UNARY(clone, a.clone())
MT_UNARY(detach, a.detach())
MT_UNARY_(detach_, a.detach_())
MT_UNARY(contiguous, a.contiguous())
MT_API int32_t mt_copy_(mt_tensor dst, mt_tensor src, bool non_blocking) {
  MT_TRY mt::T(dst).copy_(mt::T(src), non_blocking); MT_END
}

// Accumulates gradients into the graph's leaves. `grad` may be NULL for a scalar output.
// retain_graph: -1 = default (same as create_graph), 0 = false, 1 = true.
MT_API int32_t mt_backward(mt_tensor a, mt_tensor grad, int32_t retain_graph, bool create_graph) {
  MT_TRY
  mt::optional<bool> retain = retain_graph < 0 ? mt::nullopt : mt::optional<bool>(retain_graph != 0);
  mt::T(a).backward(mt::opt(grad), retain, create_graph);
  MT_END
}
// The accumulated gradient, or NULL when none has been computed.
MT_API int32_t mt_tensor_grad(mt_tensor a, mt_tensor* out) { MT_TRY *out = mt::wrap(mt::T(a).grad()); MT_END }
MT_API int32_t mt_tensor_set_grad(mt_tensor a, mt_tensor grad) {
  MT_TRY mt::T(a).mutable_grad() = mt::opt(grad); MT_END
}
// Gradients of `outputs` w.r.t. `inputs` without touching any .grad field. `grad_outputs` may be NULL
// (all outputs scalar) or hold n_out handles (NULL entries allowed). `results` must have room for n_in handles;
// an input that the outputs do not depend on gets NULL when allow_unused is true.
MT_API int32_t mt_autograd_grad(const mt_tensor* outputs, int64_t n_out, const mt_tensor* inputs, int64_t n_in,
                                const mt_tensor* grad_outputs, int32_t retain_graph, bool create_graph,
                                bool allow_unused, mt_tensor* results) {
  MT_TRY
  auto outs = mt::tensors(outputs, n_out);
  auto ins = mt::tensors(inputs, n_in);
  std::vector<at::Tensor> gouts;
  if (grad_outputs) for (int64_t k = 0; k < n_out; ++k) gouts.push_back(mt::opt(grad_outputs[k]));
  mt::optional<bool> retain = retain_graph < 0 ? mt::nullopt : mt::optional<bool>(retain_graph != 0);
  auto grads = torch::autograd::grad(outs, ins, gouts, retain, create_graph, allow_unused);
  for (int64_t k = 0; k < n_in; ++k) results[k] = mt::wrap(grads[static_cast<size_t>(k)]);
  MT_END
}

// Replaces the data of `t` by `src` keeping t's identity (how Module.to() moves parameters in place).
MT_API int32_t mt_tensor_set_data(mt_tensor t, mt_tensor src) {
  MT_TRY mt::T(t).set_data(mt::T(src)); MT_END
}
MT_UNARY_(zero_, a.zero_())
MT_API int32_t mt_fill_(mt_tensor t, mt_scalar value) { MT_TRY mt::T(t).fill_(mt::scalar(value)); MT_END }
