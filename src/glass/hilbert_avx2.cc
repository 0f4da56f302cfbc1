// Compiled with -mavx2 (map.cmake); reached only through the run-time check in hilbert.cc.
#include <immintrin.h>

#include "glass/hilbert_core.h"

namespace haywire::glass {

void hilbert_d2xy_avx2(unsigned order, const std::uint64_t* d, Cell* out, std::size_t n) {
  d2xy_vectors<U32x8, U64x8>(order, d, out, n);
}

void hilbert_xy2d_avx2(unsigned order, const Cell* cells, std::uint64_t* out, std::size_t n) {
  const unsigned steps = (order + 3) / 4;
  const unsigned pad = 4 * steps - order;
  const __m128i pad_count = _mm_cvtsi32_si128(static_cast<int>(pad));
  const __m128i unpad_count = _mm_cvtsi32_si128(static_cast<int>(2 * pad));
  const __m256i nibble = _mm256_set1_epi32(15);
  const __m256i low_byte = _mm256_set1_epi32(0xFF);
  // x0 y0 x1 y1 x2 y2 x3 y3 -> x0 x1 x2 x3 y0 y1 y2 y3
  const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const auto* table = reinterpret_cast<const int*>(kXy2dTable.data());
  for (std::size_t i = 0; i < n; i += 8) {
    const __m256i a = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cells + i)), split);
    const __m256i b = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cells + i + 4)), split);
    const __m256i x = _mm256_sll_epi32(_mm256_permute2x128_si256(a, b, 0x20), pad_count);
    const __m256i y = _mm256_sll_epi32(_mm256_permute2x128_si256(a, b, 0x31), pad_count);
    __m256i state = _mm256_setzero_si256();
    __m256i d = _mm256_setzero_si256();
    for (unsigned step = steps; step-- > 0;) {
      const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(4 * step));
      const __m256i xn = _mm256_and_si256(_mm256_srl_epi32(x, shift), nibble);
      const __m256i yn = _mm256_and_si256(_mm256_srl_epi32(y, shift), nibble);
      const __m256i index = _mm256_or_si256(_mm256_slli_epi32(state, 8),
                                            _mm256_or_si256(_mm256_slli_epi32(xn, 4), yn));
      const __m256i entry = _mm256_i32gather_epi32(table, index, 4);
      d = _mm256_or_si256(_mm256_slli_epi32(d, 8), _mm256_and_si256(entry, low_byte));
      state = _mm256_srli_epi32(entry, 8);
    }
    d = _mm256_srl_epi32(d, unpad_count);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_cvtepu32_epi64(_mm256_castsi256_si128(d)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 4),
                        _mm256_cvtepu32_epi64(_mm256_extracti128_si256(d, 1)));
  }
}

}  // namespace haywire::glass
