// Hilbert curve without loops over levels.
//
// Reading an index top-down, each base-4 digit q picks a quadrant, and the sub-curve inside it
// is the parent curve transformed by T_q: transpose for q = 0, anti-transpose for q = 3,
// identity otherwise. These transforms form the Klein four-group, so the transform in force at
// a level is the XOR of two bits over all higher digits: "swap" (parity of digits 0 and 3) and
// "complement" (parity of digits 3). Both are prefix XORs, computed for all 16 levels at once
// with 4 shift/XOR steps. d2xy is therefore ~30 branch-free 32-bit operations, which the batch
// form runs 8 (AVX2) or 4 (SSE2) points at a time with GCC vector extensions.
//
// xy2d's state depends on the digit it is decoding, so it runs the same 4-state automaton via
// a table that consumes 4 levels (one nibble of x and y) per lookup; the AVX2 batch form walks
// 8 points at once with gathers. Both batch forms are picked at run time (AVX2 or not).
#include "haywire/glass/hilbert.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>
#include <type_traits>

#include "glass/hilbert_core.h"

namespace haywire::glass {
namespace {

static_assert(sizeof(Cell) == 8 && std::is_trivially_copyable_v<Cell>,
              "the batch code stores a Cell as one little-endian u64 (x | y << 32)");

constexpr bool valid_order(unsigned order) {
  return order >= kMinHilbertOrder && order <= kMaxHilbertOrder;
}

inline std::uint64_t xy2d_fast(unsigned order, std::uint32_t x, std::uint32_t y) {
  const unsigned steps = (order + 3) / 4;
  const unsigned pad = 4 * steps - order;
  x <<= pad;
  y <<= pad;
  std::uint32_t state = 0;
  std::uint32_t d = 0;
  for (unsigned step = steps; step-- > 0;) {
    const unsigned shift = 4 * step;
    const std::uint32_t entry =
        kXy2dTable[(state << 8) | (((x >> shift) & 15) << 4) | ((y >> shift) & 15)];
    d = (d << 8) | (entry & 0xFFu);
    state = entry >> 8;
  }
  return d >> (2 * pad);
}

void d2xy_sse2(unsigned order, const std::uint64_t* d, Cell* out, std::size_t n) {
  d2xy_vectors<U32x4, U64x4>(order, d, out, n);
}

bool have_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") != 0;
  return avx2;
}

}  // namespace

Cell hilbert_d2xy(unsigned order, std::uint64_t d) {
  assert(valid_order(order) && d < (std::uint64_t{1} << (2 * order)));
  std::uint32_t x = 0;
  std::uint32_t y = 0;
  d2xy_core(static_cast<std::uint32_t>(d) << (32 - 2 * order), x, y);
  return {x >> (16 - order), y >> (16 - order)};
}

std::uint64_t hilbert_xy2d(unsigned order, std::uint32_t x, std::uint32_t y) {
  assert(valid_order(order) && (x >> order) == 0 && (y >> order) == 0);
  return xy2d_fast(order, x, y);
}

void hilbert_d2xy_batch(unsigned order, std::span<const std::uint64_t> d, std::span<Cell> out) {
  assert(valid_order(order) && d.size() == out.size());
  const std::size_t n = d.size();
  std::size_t done = 0;
  if (have_avx2()) {
    done = n & ~std::size_t{7};
    hilbert_d2xy_avx2(order, d.data(), out.data(), done);
  } else {
    done = n & ~std::size_t{3};
    d2xy_sse2(order, d.data(), out.data(), done);
  }
  for (std::size_t i = done; i < n; ++i) out[i] = hilbert_d2xy(order, d[i]);
}

void hilbert_xy2d_batch(unsigned order, std::span<const Cell> cells, std::span<std::uint64_t> out) {
  assert(valid_order(order) && cells.size() == out.size());
  std::size_t done = 0;
  if (have_avx2()) {
    done = cells.size() & ~std::size_t{7};
    hilbert_xy2d_avx2(order, cells.data(), out.data(), done);
  }
  for (std::size_t i = done; i < cells.size(); ++i) out[i] = xy2d_fast(order, cells[i].x, cells[i].y);
}

std::span<const std::uint32_t> hilbert_row_major_table(unsigned order) {
  assert(order >= kMinHilbertOrder && order <= kMaxHilbertTableOrder);
  static std::array<std::once_flag, kMaxHilbertTableOrder + 1> once;
  static std::array<std::unique_ptr<std::vector<std::uint32_t>>, kMaxHilbertTableOrder + 1> tables;
  std::call_once(once[order], [order] {
    const std::size_t cells = std::size_t{1} << (2 * order);
    auto table = std::make_unique<std::vector<std::uint32_t>>(cells);
    constexpr std::size_t kChunk = 4096;
    std::array<std::uint64_t, kChunk> curve;
    std::array<Cell, kChunk> xy;
    for (std::size_t begin = 0; begin < cells; begin += kChunk) {
      const std::size_t n = std::min(kChunk, cells - begin);
      for (std::size_t i = 0; i < n; ++i) curve[i] = begin + i;
      hilbert_d2xy_batch(order, std::span(curve).first(n), std::span(xy).first(n));
      for (std::size_t i = 0; i < n; ++i) (*table)[begin + i] = (xy[i].y << order) | xy[i].x;
    }
    tables[order] = std::move(table);
  });
  return *tables[order];
}

double hilbert_locality(unsigned order) {
  assert(valid_order(order));
  const std::uint64_t pairs = (std::uint64_t{1} << (2 * order)) - 1;
  // Every pair up to order 10 (1 M pairs); above that, 1 M pairs evenly spaced over the curve
  // (the stride, 4^(order-10) - 1, is 3 mod 4, so the pairs start at every low digit).
  constexpr std::uint64_t kMaxPairs = std::uint64_t{1} << 20;
  const std::uint64_t stride = pairs <= kMaxPairs ? 1 : pairs / kMaxPairs;
  constexpr std::size_t kChunk = 4096;  // pairs per batch call
  std::array<std::uint64_t, 2 * kChunk> indices{};
  std::array<Cell, 2 * kChunk> cells{};
  std::uint64_t checked = 0;
  std::uint64_t adjacent = 0;
  for (std::uint64_t d = 0; d < pairs;) {
    std::size_t n = 0;
    for (; n < kChunk && d < pairs; ++n, d += stride) {
      indices[2 * n] = d;
      indices[2 * n + 1] = d + 1;
    }
    hilbert_d2xy_batch(order, std::span(indices).first(2 * n), std::span(cells).first(2 * n));
    for (std::size_t i = 0; i < n; ++i) {
      const Cell a = cells[2 * i];
      const Cell b = cells[2 * i + 1];
      const std::uint32_t dx = a.x > b.x ? a.x - b.x : b.x - a.x;
      const std::uint32_t dy = a.y > b.y ? a.y - b.y : b.y - a.y;
      adjacent += (dx + dy == 1) ? 1 : 0;
    }
    checked += n;
  }
  return checked == 0 ? 1.0 : static_cast<double>(adjacent) / static_cast<double>(checked);
}

}  // namespace haywire::glass
