// The Hilbert curve: index d along the curve <-> cell (x, y) of a (2^order)^2 grid.
// Consecutive indices are adjacent cells, so nearby addresses land in nearby pixels.
#pragma once

#include <cstdint>
#include <span>

namespace haywire::glass {

inline constexpr unsigned kMinHilbertOrder = 1;
inline constexpr unsigned kMaxHilbertOrder = 16;

struct Cell {
  std::uint32_t x = 0;
  std::uint32_t y = 0;
  friend bool operator==(const Cell&, const Cell&) = default;
};

// order in [1, 16]; d < 4^order; x, y < 2^order. Out-of-range arguments are a programming
// error (checked by the CLI, asserted here). d2xy and xy2d are exact inverses.
Cell hilbert_d2xy(unsigned order, std::uint64_t d);
std::uint64_t hilbert_xy2d(unsigned order, std::uint32_t x, std::uint32_t y);

// Batch forms for the hot path (out.size() must equal the input size).
void hilbert_d2xy_batch(unsigned order, std::span<const std::uint64_t> d, std::span<Cell> out);
void hilbert_xy2d_batch(unsigned order, std::span<const Cell> cells, std::span<std::uint64_t> out);

// The row-major grid index (y * 2^order + x) of every curve index d, for orders up to
// kMaxHilbertTableOrder: built once per order on first use (thread-safe), then shared, so
// per-interval code that walks every cell (densities, reconstruction, layouts) pays a load per
// cell instead of a conversion and a fresh buffer. The span lives as long as the process.
inline constexpr unsigned kMaxHilbertTableOrder = 12;
std::span<const std::uint32_t> hilbert_row_major_table(unsigned order);

// Share of consecutive index pairs (d, d+1) whose cells are 4-neighbours (1.0 for a true
// Hilbert curve at every order). Exhaustive up to order 10; above, 2^20 pairs evenly spaced
// along the whole curve.
double hilbert_locality(unsigned order);

}  // namespace haywire::glass
