// The floor for the tiny_ops case: the same 10k elementwise ops (a*b + c on 16 floats) called from C++ directly,
// with no binding and no interpreter. Prints "tiny_ops_floor <median_ms>".
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  int iters = argc > 2 ? std::atoi(argv[2]) : 10;
  int warmup = argc > 3 ? std::atoi(argv[3]) : 3;
  int ops = argc > 4 ? std::atoi(argv[4]) : 10000;
  if (threads > 0) at::set_num_threads(threads);
  at::manual_seed(0);
  auto a = at::rand({16}), b = at::rand({16}), c = at::rand({16});
  std::vector<double> times;
  for (int r = 0; r < warmup + iters; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < ops / 2; ++k) {
      auto ab = a * b;
      auto y = ab + c;
    }
    auto t1 = std::chrono::steady_clock::now();
    if (r >= warmup) times.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(times.begin(), times.end());
  size_t n = times.size();
  double med = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  std::printf("tiny_ops_floor %.3f\n", med);
  return 0;
}
