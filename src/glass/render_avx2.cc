// AVX2 loops of render.cc (compiled with -mavx2; called only when the CPU has AVX2). Both are
// "index computation + table gather", 8 pixels per step; the tables come from render.cc so the
// scalar and vector paths draw identical pixels.
#include <immintrin.h>

#include "glass/render_internal.h"

namespace haywire::glass::detail {

void heat_pixels_avx2(const float* density, std::size_t n, const std::uint32_t* lut, std::uint8_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 scale = _mm256_set1_ps(254.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const auto* table = reinterpret_cast<const int*>(lut);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // max(v, 0) returns 0 for NaN (the second operand), matching heat_index().
    const __m256 c = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(density + i), zero), one);
    const __m256i rounded = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(c, scale), half));
    const __m256i positive = _mm256_castps_si256(_mm256_cmp_ps(c, zero, _CMP_GT_OQ));
    const __m256i index = _mm256_sub_epi32(rounded, positive);  // + 1 where c > 0
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * i), _mm256_i32gather_epi32(table, index, 4));
  }
  heat_pixels_scalar(density + i, n - i, lut, out + 4 * i);
}

void thread_pixels_avx2(const std::uint8_t* slot, const float* rate, std::size_t n,
                        const std::uint32_t* table, std::uint8_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 scale = _mm256_set1_ps(254.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const auto* entries = reinterpret_cast<const int*>(table);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 c = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(rate + i), zero), one);
    const __m256i rounded = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(c, scale), half));
    const __m256i positive = _mm256_castps_si256(_mm256_cmp_ps(c, zero, _CMP_GT_OQ));
    const __m256i level = _mm256_sub_epi32(rounded, positive);
    const __m256i slots = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(slot + i)));
    const __m256i index = _mm256_or_si256(_mm256_slli_epi32(slots, 8), level);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * i), _mm256_i32gather_epi32(entries, index, 4));
  }
  thread_pixels_scalar(slot + i, rate + i, n - i, table, out + 4 * i);
}

}  // namespace haywire::glass::detail
