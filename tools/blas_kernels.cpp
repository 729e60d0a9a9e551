// tools/blas_kernels: OpenBLAS's kernels chosen for this CPU, before the first BLAS call.
//
// Debian 12's OpenBLAS (0.3.21) does not recognise recent Intel server cores (Sapphire Rapids
// and later) and falls back to its generic Prescott (SSE3) kernels, which are slow and whose
// triangular solve crashes (SIGSEGV in strsm_kernel_RT_PRESCOTT, reached through GPTQ's
// Cholesky steps). When that fallback happened and the user set no OPENBLAS_CORETYPE, this
// names the kernels the CPU can run (SkylakeX with AVX-512 F/BW/DQ/VL/CD enabled by the OS,
// Haswell with AVX2 and FMA) and has OpenBLAS select its kernels again, through its own
// exported gotoblas_dynamic_quit / gotoblas_dynamic_init (the same path its load-time
// constructor takes). It runs as a static constructor of the executable, which runs after the
// shared libraries' constructors and before main, so before any BLAS call and without starting
// the process again. Another BLAS (no such symbols): nothing happens.
// Measured on the development VM (bench/bench_speed.py, float32 SmolLM2-135M perplexity, one
// thread): the SkylakeX kernels evaluate about 1.5x faster than the Haswell ones.
// Linked into every executable that runs libtorch on the CPU: the CLI and the test binary.
#include <dlfcn.h>
#include <strings.h>

#include <cstdlib>
#include <string>

#include "commands.h"

namespace {

using CoreName = char* (*)();
CoreName openblas_corename() { return reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename")); }

const char* supported_core() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

__attribute__((constructor)) void sq_choose_blas_kernels() {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's choice always wins
  using Hook = void (*)();
  const CoreName corename = openblas_corename();
  auto quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (!corename || !quit || !init) return;  // another BLAS, or OpenBLAS built for one CPU
  const char* core = corename();
  if (!core || strcasecmp(core, "prescott") != 0) return;  // OpenBLAS knew this CPU
  const char* want = supported_core();
  if (!want) return;
  setenv("OPENBLAS_CORETYPE", want, 1);
  quit();
  init();
}

}  // namespace

std::string sq::cli::blas_kernels() {
  const CoreName corename = openblas_corename();
  const char* core = corename ? corename() : nullptr;
  return core ? std::string(core) : std::string();
}
