// Seen by bindgen only: 16-bit storage types for the half-precision typedefs that
// mlx-c declares only on aarch64. lib.rs defines the Rust side of both.
#pragma once
#if !defined(__aarch64__)
#include <stdint.h>
typedef uint16_t float16_t;
typedef uint16_t bfloat16_t;
#define HAS_FLOAT16
#define HAS_BFLOAT16
#endif
