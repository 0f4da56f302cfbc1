#include "haywire/glass/layout.h"

#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace haywire::glass {
namespace {

constexpr std::uint64_t kPage = kPageSize;

VirtRange range(std::uint64_t start, std::uint64_t pages) {
  return {VirtAddr(start), VirtAddr(start + pages * kPage)};
}

AddressLayout make(unsigned order, double slack = 0.0) {
  auto layout = AddressLayout::create({.order = order, .growth_slack = slack});
  EXPECT_TRUE(layout.has_value());
  return std::move(*layout);
}

// Slot of every page of `r`.
std::vector<std::uint64_t> slots(const AddressLayout& layout, VirtRange r) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t a = r.start.value(); a < r.end.value(); a += kPage) {
    auto s = layout.slot_of(VirtAddr(a));
    EXPECT_TRUE(s.has_value()) << std::hex << a;
    out.push_back(s.value_or(~0ull));
  }
  return out;
}

// 1-6 regions of 1-40 pages with holes of up to 49 pages, at a random place near 4 MiB.
std::vector<VirtRange> random_regions(std::mt19937_64& rng) {
  std::vector<VirtRange> regions;
  std::uint64_t cursor = 0x400000 + (rng() % 64) * kPage;
  const int count = 1 + static_cast<int>(rng() % 6);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t pages = 1 + rng() % 40;
    regions.push_back(range(cursor, pages));
    cursor += (pages + rng() % 50) * kPage;
  }
  return regions;
}

bool covers(const std::vector<VirtRange>& ranges, std::uint64_t address) {
  for (const VirtRange& r : ranges) {
    if (address >= r.start.value() && address < r.end.value()) return true;
  }
  return false;
}

TEST(AddressLayout, HolesCollapseAndPagesFollowTheCurve) {
  auto layout = make(4);
  const VirtRange a = range(0x10000, 3);
  const VirtRange b = range(0x7f0000000000, 5);  // far away: the hole is not drawn
  ASSERT_TRUE(layout.update(std::vector{b, a}).has_value());  // unsorted input is fine
  EXPECT_EQ(layout.line_pages(), 8u);
  EXPECT_EQ(layout.tracked_pages(), 8u);
  EXPECT_EQ(layout.pages_per_cell(), 1u);
  EXPECT_EQ(slots(layout, a), (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(slots(layout, b), (std::vector<std::uint64_t>{3, 4, 5, 6, 7}));
  EXPECT_EQ(layout.cell_of(b.start), hilbert_d2xy(4, 3));
  EXPECT_FALSE(layout.slot_of(VirtAddr(0x20000)).has_value());
  // Re-reading the same layout changes nothing.
  auto again = layout.update(std::vector{a, b});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->windows_added, 0u);
  EXPECT_EQ(again->pages_added, 0u);
  EXPECT_FALSE(again->rescaled);
  EXPECT_EQ(slots(layout, b), (std::vector<std::uint64_t>{3, 4, 5, 6, 7}));
}

TEST(AddressLayout, RegionsKeepTheirPlaceWhileOthersComeAndGo) {
  auto layout = make(6);
  const VirtRange a = range(0x100000, 10);
  const VirtRange b = range(0x200000, 20);
  const VirtRange c = range(0x300000, 30);
  ASSERT_TRUE(layout.update(std::vector{a, b, c}).has_value());
  const auto slots_a = slots(layout, a);
  const auto slots_b = slots(layout, b);
  const auto slots_c = slots(layout, c);
  const Cell cell_b = *layout.cell_of(b.start);

  // b goes away, d appears below everything: a and c stay, d is appended after the line.
  const VirtRange d = range(0x1000, 4);
  auto change = layout.update(std::vector{a, c, d});
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->windows_added, 1u);
  EXPECT_EQ(slots(layout, a), slots_a);
  EXPECT_EQ(slots(layout, c), slots_c);
  EXPECT_EQ(slots(layout, d), (std::vector<std::uint64_t>{60, 61, 62, 63}));
  // b's slots stay reserved: nothing is tracked there, so its cell shows no address.
  EXPECT_TRUE(layout.ranges_of(cell_b).empty());
  EXPECT_EQ(layout.tracked_pages(), 44u);
  EXPECT_EQ(layout.line_pages(), 64u);

  // b returns where it was.
  ASSERT_TRUE(layout.update(std::vector{a, b, c, d}).has_value());
  EXPECT_EQ(slots(layout, b), slots_b);

  // Splitting a (mprotect of its middle) keeps both ends in place.
  const VirtRange a_low = range(0x100000, 3);
  const VirtRange a_high = range(0x100000 + 6 * kPage, 4);
  ASSERT_TRUE(layout.update(std::vector{a_low, a_high, b, c, d}).has_value());
  EXPECT_EQ(slots(layout, a_low), std::vector<std::uint64_t>(slots_a.begin(), slots_a.begin() + 3));
  EXPECT_EQ(slots(layout, a_high), std::vector<std::uint64_t>(slots_a.begin() + 6, slots_a.end()));

  // Compaction drops the reservations and packs in address order.
  ASSERT_TRUE(layout.update(std::vector{a, c, d}).has_value());
  layout.compact();
  EXPECT_EQ(layout.line_pages(), 44u);
  EXPECT_EQ(slots(layout, d)[0], 0u);
  EXPECT_EQ(slots(layout, a)[0], 4u);
  EXPECT_EQ(slots(layout, c)[0], 14u);
}

TEST(AddressLayout, HeapGrowsInPlaceWithinItsSlackThenTheNewPartMoves) {
  auto layout = make(8, 0.5);
  const std::uint64_t heap = 0x555555000000;
  const VirtRange lib = range(0x7f0000000000, 16);
  ASSERT_TRUE(layout.update(std::vector{range(heap, 8), lib}).has_value());
  // The heap window reserved 4 slack pages; lib follows.
  EXPECT_EQ(slots(layout, lib)[0], 12u);
  const auto heap_slots = slots(layout, range(heap, 8));

  // Growth into the slack: same window, consecutive slots.
  ASSERT_TRUE(layout.update(std::vector{range(heap, 12), lib}).has_value());
  EXPECT_EQ(slots(layout, range(heap, 12)),
            (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));

  // Beyond the slack: the old part stays, the new part goes to the end of the line.
  auto change = layout.update(std::vector{range(heap, 20), lib});
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(slots(layout, range(heap, 8)), heap_slots);
  EXPECT_EQ(*layout.slot_of(VirtAddr(heap + 12 * kPage)), 12u + 16u + 8u);  // after lib + its slack

  // The window that ends the line grows in place.
  ASSERT_TRUE(layout.update(std::vector{range(heap, 40), lib}).has_value());
  const auto grown = slots(layout, range(heap + 12 * kPage, 28));
  for (std::size_t i = 1; i < grown.size(); ++i) EXPECT_EQ(grown[i], grown[i - 1] + 1);
}

TEST(AddressLayout, EveryPageMapsToACellWhoseInverseContainsIt) {
  std::mt19937_64 rng(7);
  for (unsigned order : {1u, 3u, 5u}) {
    auto layout = make(order, 0.25);
    // Several rounds of random regions, so windows, slack and reservations mix.
    for (int round = 0; round < 4; ++round) {
      const std::vector<VirtRange> regions = random_regions(rng);
      ASSERT_TRUE(layout.update(regions).has_value());
      std::uint64_t covered = 0;
      for (const VirtRange& r : regions) {
        for (std::uint64_t a = r.start.value(); a < r.end.value(); a += kPage) {
          auto cell = layout.cell_of(VirtAddr(a));
          ASSERT_TRUE(cell.has_value());
          ASSERT_TRUE(covers(layout.ranges_of(*cell), a)) << "order " << order << std::hex << " page " << a;
        }
      }
      // And the inverses of all cells cover exactly the tracked pages, each once.
      std::map<std::uint64_t, int> seen;
      for (std::uint32_t y = 0; y < layout.side(); ++y) {
        for (std::uint32_t x = 0; x < layout.side(); ++x) {
          for (const VirtRange& r : layout.ranges_of({x, y})) {
            for (std::uint64_t a = r.start.value(); a < r.end.value(); a += kPage) ++seen[a];
            covered += r.pages();
          }
        }
      }
      EXPECT_EQ(covered, layout.tracked_pages());
      for (const auto& [address, times] : seen) ASSERT_EQ(times, 1) << std::hex << address;
    }
  }
}

// slot_runs_of agrees with slot_of page by page, for ranges that span several windows, holes
// and addresses outside every region (those have no slot and are dropped).
TEST(AddressLayout, SlotRunsAgreeWithSlotOfEveryPage) {
  std::mt19937_64 rng(11);
  auto layout = make(5, 0.25);
  for (int round = 0; round < 4; ++round) {
    const std::vector<VirtRange> regions = random_regions(rng);
    ASSERT_TRUE(layout.update(regions).has_value());
    const std::uint64_t lo = regions.front().start.value() - 8 * kPage;
    const std::uint64_t hi = regions.back().end.value() + 8 * kPage;
    for (int q = 0; q < 50; ++q) {
      const std::uint64_t a = lo + (rng() % ((hi - lo) / kPage)) * kPage;
      const VirtRange probe = range(a, 1 + rng() % 120);
      std::vector<std::uint64_t> want;
      for (std::uint64_t p = probe.start.value(); p < probe.end.value(); p += kPage)
        if (auto slot = layout.slot_of(VirtAddr(p))) want.push_back(*slot);
      std::vector<std::uint64_t> got;
      for (const auto& run : layout.slot_runs_of(std::vector{probe}))
        for (std::uint64_t k = 0; k < run.count; ++k) got.push_back(run.first + k);
      ASSERT_EQ(got, want) << "round " << round << std::hex << " probe " << probe.start.value();
    }
  }
}

TEST(AddressLayout, ScaleIsAPowerOfTwoThatOnlyGrows) {
  auto layout = make(2);  // 16 cells
  ASSERT_TRUE(layout.update(std::vector{range(0x1000, 16)}).has_value());
  EXPECT_EQ(layout.pages_per_cell(), 1u);
  auto change = layout.update(std::vector{range(0x1000, 17)});
  ASSERT_TRUE(change.has_value());
  EXPECT_TRUE(change->rescaled);
  EXPECT_EQ(layout.pages_per_cell(), 2u);
  // Shrinking does not rescale (the slots stay reserved) ...
  change = layout.update(std::vector{range(0x1000, 4)});
  ASSERT_TRUE(change.has_value());
  EXPECT_FALSE(change->rescaled);
  EXPECT_EQ(layout.pages_per_cell(), 2u);
  // ... compaction does.
  layout.compact();
  EXPECT_EQ(layout.pages_per_cell(), 1u);
}

TEST(AddressLayout, DefaultOrderFitsThePages) {
  EXPECT_EQ(default_layout_order(0), 4u);
  EXPECT_EQ(default_layout_order(256), 4u);
  EXPECT_EQ(default_layout_order(257), 5u);
  EXPECT_EQ(default_layout_order(65536), 8u);
  EXPECT_EQ(default_layout_order(1u << 30), 8u);
  auto layout = AddressLayout::create();
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->order(), 0u);
  ASSERT_TRUE(layout->update(std::vector<VirtRange>{}).has_value());
  EXPECT_EQ(layout->order(), 0u);  // nothing tracked yet: still undecided
  // 900 pages + 1/8 default growth slack = 1013 slots: order 5 (1024 cells).
  ASSERT_TRUE(layout->update(std::vector{range(0x1000, 900)}).has_value());
  EXPECT_EQ(layout->line_pages(), 1013u);
  EXPECT_EQ(layout->order(), 5u);
}

TEST(AddressLayout, CountsPagesAndNormalisesByPagesHeld) {
  auto layout = make(3);  // 64 cells
  // 256 pages: 4 pages per cell.
  ASSERT_TRUE(layout.update(std::vector{range(0x10000000, 256)}).has_value());
  ASSERT_EQ(layout.pages_per_cell(), 4u);
  CellCounts counts;
  std::vector<VirtAddr> written;
  for (int i = 0; i < 4; ++i) written.push_back(VirtAddr(0x10000000 + i * kPage));  // all of cell 0
  written.push_back(VirtAddr(0x10000000 + 4 * kPage));                             // 1/4 of cell 1
  written.push_back(VirtAddr(0x90000000));                                          // untracked
  layout.count_pages(written, counts);
  EXPECT_EQ(counts.ignored_pages, 1u);
  DensityMap map = layout.density(counts);
  ASSERT_EQ(map.order, 3u);
  const Cell c0 = hilbert_d2xy(3, 0);
  const Cell c1 = hilbert_d2xy(3, 1);
  EXPECT_FLOAT_EQ(map.at(c0.x, c0.y), 1.0f);
  EXPECT_FLOAT_EQ(map.at(c1.x, c1.y), 0.25f);
  float total = 0;
  for (float v : map.cells) total += v;
  EXPECT_FLOAT_EQ(total, 1.25f);

  // Ranges count the same as their pages.
  CellCounts by_range;
  layout.count_ranges(std::vector{range(0x10000000, 5), range(0x90000000, 2)}, by_range);
  EXPECT_EQ(by_range.ignored_pages, 2u);
  EXPECT_EQ(by_range.cells, counts.cells);
}

TEST(AddressLayout, CountRangesMatchesCountPagesOnRandomInput) {
  std::mt19937_64 rng(3);
  auto layout = make(4, 0.1);
  ASSERT_TRUE(layout.update(std::vector{range(0x1000, 300), range(0x800000, 123), range(0x7fff0000, 77)}).has_value());
  std::vector<VirtRange> ranges;
  std::vector<VirtAddr> pages;
  for (int i = 0; i < 50; ++i) {
    const std::uint64_t start = (rng() % 0x900) * kPage;
    const std::uint64_t n = 1 + rng() % 20;
    ranges.push_back(range(start, n));
    for (std::uint64_t p = 0; p < n; ++p) pages.push_back(VirtAddr(start + p * kPage));
  }
  CellCounts a;
  CellCounts b;
  layout.count_ranges(ranges, a);
  layout.count_pages(pages, b);
  EXPECT_EQ(a.cells, b.cells);
  EXPECT_EQ(a.ignored_pages, b.ignored_pages);
}

TEST(AddressLayout, RejectsHostileRegionsAndStaysUnchanged) {
  auto layout = make(4);
  const VirtRange good = range(0x10000, 4);
  ASSERT_TRUE(layout.update(std::vector{good}).has_value());
  const std::vector<std::vector<VirtRange>> bad = {
      {range(0x10000, 4), range(0x12000, 4)},                  // overlap
      {{VirtAddr(0x5000), VirtAddr(0x5000)}},                  // empty
      {{VirtAddr(0x9000), VirtAddr(0x5000)}},                  // reversed
      {{VirtAddr(0x5001), VirtAddr(0x6000)}},                  // unaligned start
      {{VirtAddr(0x5000), VirtAddr(0x6800)}},                  // unaligned end
      {{VirtAddr(0x1000), VirtAddr(~0ull)}},                   // end past the last page
      {{VirtAddr(0), VirtAddr(0xFFFFFFFFFFFFF000ull)}},        // 2^52 pages: too many for order 4
  };
  for (const auto& regions : bad) {
    auto result = layout.update(regions);
    ASSERT_FALSE(result.has_value());
    EXPECT_TRUE(result.error().is<InvalidArgument>()) << result.error().message();
    EXPECT_EQ(layout.line_pages(), 4u);
    EXPECT_EQ(layout.regions().size(), 1u);
    EXPECT_EQ(slots(layout, good), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  }
  EXPECT_FALSE(AddressLayout::create({.order = 13}).has_value());
  EXPECT_FALSE(AddressLayout::create({.order = 4, .growth_slack = -1}).has_value());
}

TEST(AddressLayout, HandlesTheTopOfTheAddressSpace) {
  auto layout = make(8, 1.0);
  const VirtRange top = {VirtAddr(0xFFFFFFFFFFFFE000ull), VirtAddr(0xFFFFFFFFFFFFF000ull)};
  const VirtRange huge = {VirtAddr(0x1000), VirtAddr(0x1000 + (std::uint64_t{1} << 40))};
  auto change = layout.update(std::vector{huge, top});
  ASSERT_TRUE(change.has_value()) << change.error().message();
  EXPECT_EQ(layout.tracked_pages(), (std::uint64_t{1} << 28) + 1);
  auto cell = layout.cell_of(top.start);
  ASSERT_TRUE(cell.has_value());
  EXPECT_TRUE(covers(layout.ranges_of(*cell), top.start.value()));
  EXPECT_FALSE(layout.slot_of(VirtAddr(0xFFFFFFFFFFFFF000ull)).has_value());
  // A cell can hold at most 2^31 pages: 2^40 pages do not fit order 1 (4 cells).
  auto small = make(1);
  EXPECT_FALSE(small.update(std::vector{VirtRange{VirtAddr(0), VirtAddr(std::uint64_t{1} << 52)}}).has_value());
}

}  // namespace
}  // namespace haywire::glass
