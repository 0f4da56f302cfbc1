// Pixel loops shared by render.cc and render_avx2.cc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace haywire::glass::detail {

// Density (or rate) -> table index: 0 for v <= 0 or NaN, else 1 + round(min(v, 1) * 254).
inline std::uint32_t level_index(float v) {
  const float c = std::min(v > 0.0f ? v : 0.0f, 1.0f);
  return static_cast<std::uint32_t>(c * 254.0f + 0.5f) + (c > 0.0f ? 1u : 0u);
}

// lut: 256 packed RGBA colours (entry 0 = background).
inline void heat_pixels_scalar(const float* density, std::size_t n, const std::uint32_t* lut,
                               std::uint8_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t color = lut[level_index(density[i])];
    std::memcpy(out + 4 * i, &color, 4);
  }
}

// table: 256 x 256 packed colours, index slot << 8 | level.
inline void thread_pixels_scalar(const std::uint8_t* slot, const float* rate, std::size_t n,
                                 const std::uint32_t* table, std::uint8_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t color = table[(std::uint32_t{slot[i]} << 8) | level_index(rate[i])];
    std::memcpy(out + 4 * i, &color, 4);
  }
}

void heat_pixels_avx2(const float* density, std::size_t n, const std::uint32_t* lut, std::uint8_t* out);
void thread_pixels_avx2(const std::uint8_t* slot, const float* rate, std::size_t n,
                        const std::uint32_t* table, std::uint8_t* out);

}  // namespace haywire::glass::detail
