// Force-included into every mlx-c translation unit built by semkv's mlx-sys.
//
// 1. gcc 12's libstdc++ lacks std::format, which mlx-c uses for a few error messages;
//    a minimal "{}"-substituting fallback is enough for those.
// 2. mlx-c declares float16_t / bfloat16_t (and the functions using them) only on
//    aarch64; on other targets we alias MLX's own 16-bit storage types so that the full
//    API (which mlx-rs calls unconditionally) is compiled.
#pragma once
#ifdef __cplusplus
#include <version>
#include <sstream>
#include <string>
#include <string_view>

#if !defined(__cpp_lib_format)
namespace std {
namespace semkv_format_fallback {
inline void write(std::ostringstream& out, std::string_view fmt) { out << fmt; }
template <class T, class... Rest>
void write(std::ostringstream& out, std::string_view fmt, const T& value,
           const Rest&... rest) {
  auto at = fmt.find("{}");
  if (at == std::string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, at) << value;
  write(out, fmt.substr(at + 2), rest...);
}
}  // namespace semkv_format_fallback
template <class... Args>
std::string format(std::string_view fmt, const Args&... args) {
  std::ostringstream out;
  semkv_format_fallback::write(out, fmt, args...);
  return out.str();
}
}  // namespace std
#endif

#if !defined(__aarch64__)
#include <mlx/types/half_types.h>
typedef mlx::core::float16_t float16_t;
typedef mlx::core::bfloat16_t bfloat16_t;
#define HAS_FLOAT16
#define HAS_BFLOAT16
#endif
#endif
