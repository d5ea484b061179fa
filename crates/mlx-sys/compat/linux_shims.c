/* Linux stand-ins for what mlx-rs expects from macOS, plus the OpenBLAS anchor.
 *
 * mlx-rs seeds its random state with mach_approximate_time() (via mach-sys); these
 * shims read CLOCK_MONOTONIC instead.
 *
 * With SEMKV_WITH_OPENBLAS, this object references an OpenBLAS symbol so that the
 * linker (which runs with --as-needed) keeps libopenblas in the binary's needed list,
 * ahead of libmlx: MLX's cblas_sgemm calls then bind to OpenBLAS rather than the
 * wheel's reference BLAS. */
#include <stdint.h>
#include <time.h>

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mach_absolute_time(void) { return monotonic_ns(); }
uint64_t mach_approximate_time(void) { return monotonic_ns(); }
uint64_t mach_continuous_time(void) { return monotonic_ns(); }

#ifdef SEMKV_WITH_OPENBLAS
int openblas_get_num_threads(void);
/* Number of threads OpenBLAS uses; 0 when built without OpenBLAS. */
int semkv_blas_threads(void) { return openblas_get_num_threads(); }
#else
int semkv_blas_threads(void) { return 0; }
#endif
