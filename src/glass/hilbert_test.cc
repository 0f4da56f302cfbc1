#include "haywire/glass/hilbert.h"

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "glass/hilbert_reference.h"

namespace haywire::glass {
namespace {

std::uint64_t cell_count(unsigned order) { return std::uint64_t{1} << (2 * order); }

TEST(Hilbert, MatchesReferenceLoopAtSmallOrders) {
  for (unsigned order = 1; order <= 8; ++order) {
    for (std::uint64_t d = 0; d < cell_count(order); ++d) {
      const Cell expected = reference::d2xy(order, d);
      ASSERT_EQ(hilbert_d2xy(order, d), expected) << "order " << order << " d " << d;
      ASSERT_EQ(hilbert_xy2d(order, expected.x, expected.y), reference::xy2d(order, expected.x, expected.y));
    }
  }
}

TEST(Hilbert, KnownOrderOneAndTwoCurves) {
  // Order 1: (0,0) (0,1) (1,1) (1,0).
  EXPECT_EQ(hilbert_d2xy(1, 0), (Cell{0, 0}));
  EXPECT_EQ(hilbert_d2xy(1, 1), (Cell{0, 1}));
  EXPECT_EQ(hilbert_d2xy(1, 2), (Cell{1, 1}));
  EXPECT_EQ(hilbert_d2xy(1, 3), (Cell{1, 0}));
  // Order 2 starts by going right (the first quadrant is transposed) and ends at (3, 0).
  EXPECT_EQ(hilbert_d2xy(2, 1), (Cell{1, 0}));
  EXPECT_EQ(hilbert_d2xy(2, 15), (Cell{3, 0}));
}

TEST(Hilbert, RoundTripsEveryIndexUpToOrderTen) {
  for (unsigned order = 1; order <= 10; ++order) {
    const std::uint64_t n = cell_count(order);
    std::vector<std::uint64_t> d(n);
    for (std::uint64_t i = 0; i < n; ++i) d[i] = i;
    std::vector<Cell> cells(n);
    std::vector<std::uint64_t> back(n);
    hilbert_d2xy_batch(order, d, cells);
    hilbert_xy2d_batch(order, cells, back);
    std::vector<bool> seen(n, false);
    for (std::uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(cells[i], hilbert_d2xy(order, i)) << "batch differs, order " << order << " d " << i;
      ASSERT_EQ(back[i], i) << "order " << order;
      ASSERT_EQ(hilbert_xy2d(order, cells[i].x, cells[i].y), i);
      const std::uint64_t flat = (std::uint64_t{cells[i].y} << order) | cells[i].x;
      ASSERT_FALSE(seen[flat]) << "two indices map to one cell, order " << order;
      seen[flat] = true;
    }
  }
}

TEST(Hilbert, RoundTripsRandomSamplesAtHighOrders) {
  std::mt19937_64 rng(42);
  for (unsigned order = 11; order <= 16; ++order) {
    const std::uint64_t n = cell_count(order);
    std::vector<std::uint64_t> d(100'003);  // odd size exercises the batch tail
    for (auto& v : d) v = rng() % n;
    d[0] = 0;
    d[1] = n - 1;
    std::vector<Cell> cells(d.size());
    std::vector<std::uint64_t> back(d.size());
    hilbert_d2xy_batch(order, d, cells);
    hilbert_xy2d_batch(order, cells, back);
    for (std::size_t i = 0; i < d.size(); ++i) {
      ASSERT_LT(cells[i].x, 1u << order);
      ASSERT_LT(cells[i].y, 1u << order);
      ASSERT_EQ(back[i], d[i]) << "order " << order;
      if (i < 2000) {
        ASSERT_EQ(cells[i], reference::d2xy(order, d[i])) << "order " << order << " d " << d[i];
      }
    }
    // And from the coordinate side.
    for (int i = 0; i < 2000; ++i) {
      const auto x = static_cast<std::uint32_t>(rng() >> (64 - order));
      const auto y = static_cast<std::uint32_t>(rng() >> (64 - order));
      const std::uint64_t dd = hilbert_xy2d(order, x, y);
      ASSERT_EQ(dd, reference::xy2d(order, x, y));
      ASSERT_EQ(hilbert_d2xy(order, dd), (Cell{x, y}));
    }
  }
}

TEST(Hilbert, RowMajorTableMatchesTheMapping) {
  for (unsigned order = kMinHilbertOrder; order <= kMaxHilbertTableOrder; ++order) {
    const auto table = hilbert_row_major_table(order);
    ASSERT_EQ(table.size(), cell_count(order)) << "order " << order;
    // Every index up to order 10, then a stride (order 12 has 16 M entries).
    const std::uint64_t step = order <= 10 ? 1 : 4099;
    for (std::uint64_t d = 0; d < table.size(); d += step) {
      const Cell c = hilbert_d2xy(order, d);
      ASSERT_EQ(table[d], (c.y << order) | c.x) << "order " << order << " d " << d;
    }
    // Built once: a second call hands out the same table.
    EXPECT_EQ(hilbert_row_major_table(order).data(), table.data());
  }
}

TEST(Hilbert, ConsecutiveIndicesAreAdjacentCells) {
  for (unsigned order = 1; order <= 16; ++order) {
    const double share = hilbert_locality(order);
    std::printf("order %2u: locality share %.6f\n", order, share);
    EXPECT_EQ(share, 1.0) << "order " << order;
  }
}

TEST(Hilbert, LocalityCheckDetectsANonCurve) {
  // Sanity of the metric itself: a row-major scan is not 1.0 (its row wraps jump).
  unsigned adjacent = 0;
  const unsigned side = 16;
  for (unsigned d = 0; d + 1 < side * side; ++d) {
    const unsigned ax = d % side, ay = d / side, bx = (d + 1) % side, by = (d + 1) / side;
    adjacent += (ax == bx ? (by - ay == 1) : (ay == by && bx - ax == 1)) ? 1 : 0;
  }
  EXPECT_LT(adjacent, side * side - 1);
}

}  // namespace
}  // namespace haywire::glass
