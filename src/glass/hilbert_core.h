// The branch-free d2xy kernel shared by hilbert.cc (scalar, SSE2) and hilbert_avx2.cc (built
// with -mavx2). Everything here has internal linkage so that no AVX2 copy of it can be picked
// by the linker for a caller on a CPU without AVX2.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "haywire/glass/hilbert.h"

namespace haywire::glass {
namespace {

// Gathers the even bits of v into its low 16 bits. Works on scalars and GCC vectors alike.
template <class U>
inline U even_bits(U v) {
  v &= 0x55555555u;
  v = (v | (v >> 1)) & 0x33333333u;
  v = (v | (v >> 2)) & 0x0F0F0F0Fu;
  v = (v | (v >> 4)) & 0x00FF00FFu;
  v = (v | (v >> 8)) & 0x0000FFFFu;
  return v;
}

// Bit k of the result is the XOR of the bits of v above k (v has 16 significant bits).
template <class U>
inline U xor_of_higher_bits(U v) {
  v >>= 1;
  v ^= v >> 1;
  v ^= v >> 2;
  v ^= v >> 4;
  v ^= v >> 8;
  return v;
}

// index: the 2*order-bit Hilbert index shifted so that its top digit is at bits 31..30
// (padding digits below it do not influence higher levels, and are shifted out at the end).
template <class U>
inline void d2xy_core(U index, U& x, U& y) {
  const U lo = even_bits(index);        // low bit of each digit, top level at bit 15
  const U hi = even_bits(index >> 1);   // high bit of each digit
  const U swap = xor_of_higher_bits(~(lo ^ hi) & 0xFFFFu);  // digits 0 and 3 transpose
  const U complement = xor_of_higher_bits(lo & hi);        // digit 3 also mirrors
  const U swapped = lo & swap;
  x = hi ^ swapped ^ complement;
  y = hi ^ lo ^ swapped ^ complement;
}

using U32x8 = std::uint32_t __attribute__((vector_size(32)));
using U64x8 = std::uint64_t __attribute__((vector_size(64)));
using U32x4 = std::uint32_t __attribute__((vector_size(16)));
using U64x4 = std::uint64_t __attribute__((vector_size(32)));

// Converts d[0, n) (n a multiple of the vector width W) with W-wide vectors.
template <class VU32, class VU64>
inline void d2xy_vectors(unsigned order, const std::uint64_t* d, Cell* out, std::size_t n) {
  constexpr std::size_t kWidth = sizeof(VU32) / sizeof(std::uint32_t);
  const unsigned up = 32 - 2 * order;
  const unsigned down = 16 - order;
  for (std::size_t i = 0; i < n; i += kWidth) {
    VU64 wide;
    std::memcpy(&wide, d + i, sizeof(wide));
    const VU32 index = __builtin_convertvector(wide, VU32) << up;
    VU32 x;
    VU32 y;
    d2xy_core(index, x, y);
    const VU64 packed = __builtin_convertvector(x >> down, VU64) |
                        (__builtin_convertvector(y >> down, VU64) << 32);
    std::memcpy(static_cast<void*>(out + i), &packed, sizeof(packed));
  }
}

// One lookup decodes 4 levels: index = state << 8 | x_nibble << 4 | y_nibble; entry = the 8
// index bits for those levels | next state << 8. State bit 0 = swap, bit 1 = complement.
constexpr std::array<std::uint32_t, 1024> make_xy2d_table() {
  std::array<std::uint32_t, 1024> table{};
  for (unsigned entry = 0; entry < 1024; ++entry) {
    unsigned swap = (entry >> 8) & 1;
    unsigned complement = (entry >> 9) & 1;
    unsigned digits = 0;
    for (int level = 3; level >= 0; --level) {
      const unsigned xb = (entry >> (4 + level)) & 1;
      const unsigned yb = (entry >> level) & 1;
      const unsigned rx = (swap != 0 ? yb : xb) ^ complement;
      const unsigned ry = (swap != 0 ? xb : yb) ^ complement;
      digits = (digits << 2) | (rx << 1) | (rx ^ ry);
      if (ry == 0) {
        swap ^= 1;
        complement ^= rx;
      }
    }
    table[entry] = digits | (swap << 8) | (complement << 9);
  }
  return table;
}
constexpr std::array<std::uint32_t, 1024> kXy2dTable = make_xy2d_table();

}  // namespace

// AVX2 batch d2xy for n a multiple of 8 (hilbert_avx2.cc; call only if the CPU has AVX2).
void hilbert_d2xy_avx2(unsigned order, const std::uint64_t* d, Cell* out, std::size_t n);
// AVX2 batch xy2d for n a multiple of 8: the table walk with 8-lane gathers.
void hilbert_xy2d_avx2(unsigned order, const Cell* cells, std::uint64_t* out, std::size_t n);

}  // namespace haywire::glass
