// Enumeration of synthetic address spaces: coalescing, flags, halves, agreement with the
// walker, shared tables, and hostile structures that must stay bounded.
#include "haywire/arch/enumerate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "arch/testing/fake_guest.h"
#include "haywire/arch/walker.h"

namespace haywire::arch {
namespace {

using testing::FakeGuest;
using testing::PageTableBuilder;
constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kTableBits = PageTableBuilder::kDefaultTableBits;
constexpr std::uint64_t kText = 0xffff'ffff'8100'0000ull;

// Every range's pages translate, one by one, to what the range says (sampled for big ones).
void expect_agrees_with_walks(const FakeGuest& g, const PagingMode& mode, const Enumeration& e) {
  for (const MappedRange& r : e.ranges) {
    const std::uint64_t pages = r.size / r.page_size;
    const std::uint64_t step = pages > 64 ? pages / 64 : 1;
    for (std::uint64_t p = 0; p < pages; p += step) {
      const std::uint64_t off = p * r.page_size + (r.page_size - 8);
      const Translation t = walk(g.ram(), mode, g.cr3(), r.va + off);
      ASSERT_TRUE(t.mapped()) << std::hex << (r.va + off).value();
      EXPECT_EQ(t.pa, r.pa + off);
      EXPECT_EQ(t.page_size, r.page_size);
      EXPECT_EQ(t.flags, r.flags);
    }
  }
  for (std::size_t i = 1; i < e.ranges.size(); ++i) ASSERT_LT(e.ranges[i - 1].va_last(), e.ranges[i].va);
}

TEST(Enumerate, CoalescesContiguousPagesWithTheSameFlagsAndSize) {
  for (int levels : {4, 5}) {
    FakeGuest g(16 * kMiB, levels);
    const PagingMode mode = PagingMode::make(levels);
    // 16 pages of text (read-only, executable), 8 of rodata (nx), a hole, 4 pages of data
    // physically discontiguous in the middle, a 2 MiB run of two pages, a user page.
    g.pt().map_range(VirtAddr(kText), PhysAddr(0x40'0000), 16 * kPage4K, kPage4K, 0);
    g.pt().map_range(VirtAddr(kText + 16 * kPage4K), PhysAddr(0x41'0000), 8 * kPage4K, kPage4K, pte::kNoExecute);
    g.pt().map(VirtAddr(kText + 32 * kPage4K), PhysAddr(0x50'0000), kPage4K, pte::kWritable);
    g.pt().map(VirtAddr(kText + 33 * kPage4K), PhysAddr(0x50'1000), kPage4K, pte::kWritable);
    g.pt().map(VirtAddr(kText + 34 * kPage4K), PhysAddr(0x70'0000), kPage4K, pte::kWritable);
    g.pt().map(VirtAddr(kText + 35 * kPage4K), PhysAddr(0x70'1000), kPage4K, pte::kWritable);
    g.pt().map_range(VirtAddr(0xffff'8880'0000'0000ull), PhysAddr(0), 2 * kPage2M, kPage2M, pte::kWritable);
    g.pt().map(VirtAddr(0x40'0000), PhysAddr(0x60'0000), kPage4K, pte::kUser);

    const Enumeration e = enumerate(g.ram(), mode, g.cr3());
    ASSERT_EQ(e.ranges.size(), 6u) << levels;
    EXPECT_EQ(e.ranges[0], (MappedRange{VirtAddr(0x40'0000), PhysAddr(0x60'0000), kPage4K, kPage4K,
                                        PageFlags(PageFlags::kPresent | PageFlags::kUser)}));
    EXPECT_EQ(e.ranges[1].va.value(), 0xffff'8880'0000'0000ull);
    EXPECT_EQ(e.ranges[1].size, 2 * kPage2M);
    EXPECT_EQ(e.ranges[1].page_size, kPage2M);
    EXPECT_EQ(e.ranges[2], (MappedRange{VirtAddr(kText), PhysAddr(0x40'0000), 16 * kPage4K, kPage4K,
                                        PageFlags(PageFlags::kPresent)}));
    EXPECT_EQ(e.ranges[3].size, 8 * kPage4K);
    EXPECT_TRUE(e.ranges[3].flags.has(PageFlags::kNoExecute));
    EXPECT_EQ(e.ranges[4].size, 2 * kPage4K);
    EXPECT_EQ(e.ranges[5].pa.value(), 0x70'0000u);
    EXPECT_EQ(e.mapped_bytes, 29 * kPage4K + 2 * kPage2M);
    EXPECT_FALSE(e.truncated);
    expect_agrees_with_walks(g, mode, e);
  }
}

TEST(Enumerate, HalvesSelectUserOrKernelAddresses) {
  FakeGuest g(16 * kMiB, 5);
  g.pt().map(VirtAddr(0x40'0000), PhysAddr(0x60'0000), kPage4K, pte::kUser);
  g.pt().map(VirtAddr(0xff11'0000'0000'0000ull), PhysAddr(0), kPage1G, pte::kWritable);
  const PagingMode mode = PagingMode::five_level();
  const Enumeration user = enumerate(g.ram(), mode, g.cr3(), {.half = Half::kUser});
  ASSERT_EQ(user.ranges.size(), 1u);
  EXPECT_EQ(user.ranges[0].va.value(), 0x40'0000u);
  const Enumeration kernel = enumerate(g.ram(), mode, g.cr3(), {.half = Half::kKernel});
  ASSERT_EQ(kernel.ranges.size(), 1u);
  EXPECT_EQ(kernel.ranges[0].va.value(), 0xff11'0000'0000'0000ull);
  EXPECT_EQ(kernel.ranges[0].page_size, kPage1G);
}

TEST(Enumerate, AgreesWithTheWalkerOnARandomAddressSpace) {
  for (int levels : {4, 5}) {
    FakeGuest g(64 * kMiB, levels, PhysAddr(32 * kMiB));
    const PagingMode mode = PagingMode::make(levels);
    std::mt19937_64 rng(static_cast<std::uint64_t>(levels));
    const std::uint64_t flag_choices[] = {0, pte::kWritable, pte::kUser | pte::kWritable, pte::kNoExecute,
                                          pte::kGlobal | pte::kAccessed | pte::kDirty};
    const std::uint64_t bases[] = {0x40'0000ull, 0x7f00'0000'0000ull, 0xffff'8880'0000'0000ull,
                                   0xffff'c900'0000'0000ull, kText};
    for (int i = 0; i < 3000; ++i) {
      const std::uint64_t base = bases[rng() % 5];
      const std::uint64_t flags = flag_choices[rng() % 5];
      if (rng() % 10 == 0) {
        const std::uint64_t va = (base + (rng() % 64) * kPage2M) & ~(kPage2M - 1);
        try {
          g.pt().map(VirtAddr(va), PhysAddr((rng() % 16) * kPage2M), kPage2M, flags);
        } catch (const std::logic_error&) {  // a 4 KiB table already there
        }
      } else {
        const std::uint64_t va = base + (64 + rng() % 4096) * kPage4K;
        const std::uint64_t pa = (rng() % 2 == 0) ? (va & 0xff'f000) : (rng() % 8192) * kPage4K;
        try {
          g.pt().map(VirtAddr(va), PhysAddr(pa), kPage4K, flags);
        } catch (const std::logic_error&) {  // a 2 MiB page already there
        }
      }
    }
    const Enumeration e = enumerate(g.ram(), mode, g.cr3());
    expect_agrees_with_walks(g, mode, e);
    // And the other way: random addresses are mapped exactly when a range covers them.
    for (int i = 0; i < 20000; ++i) {
      const VirtAddr va(bases[rng() % 5] + rng() % (80 * kPage2M));
      const Translation t = walk(g.ram(), mode, g.cr3(), va);
      const auto it = std::upper_bound(e.ranges.begin(), e.ranges.end(), va,
                                       [](VirtAddr v, const MappedRange& r) { return v < r.va; });
      const bool covered = it != e.ranges.begin() && va <= std::prev(it)->va_last();
      ASSERT_EQ(t.mapped(), covered) << std::hex << va.value();
      if (covered) {
        EXPECT_EQ(t.pa, std::prev(it)->pa + (va - std::prev(it)->va));
      }
    }
  }
}

TEST(Enumerate, SharedTablesAreListedWhereverTheyAreLinked) {
  FakeGuest g(16 * kMiB, 4);
  const PagingMode mode = PagingMode::four_level();
  // One page table with three mappings, linked from two PD entries, the second time through
  // a read-only, no-execute PD entry: same pages, different effective permissions.
  const VirtAddr a(0xffff'c900'0000'0000ull);
  g.pt().map(a, PhysAddr(0x40'0000), kPage4K, pte::kWritable);
  g.pt().map(a + kPage4K, PhysAddr(0x40'1000), kPage4K, pte::kWritable);
  g.pt().map(a + 100 * kPage4K, PhysAddr(0x50'0000), kPage4K, pte::kWritable);
  const std::uint64_t pt = g.pt().entry(g.pt().entry_addr(a, 2));
  g.pt().set_entry(g.pt().entry_addr(a + kPage2M, 2), pt);
  g.pt().set_entry(g.pt().entry_addr(a + 3 * kPage2M, 2), pt);
  g.pt().set_entry(g.pt().entry_addr(a + 5 * kPage2M, 2), (pt & ~pte::kWritable) | pte::kNoExecute);
  const Enumeration e = enumerate(g.ram(), mode, g.cr3());
  ASSERT_EQ(e.ranges.size(), 8u);
  for (std::uint64_t k : {0u, 1u, 3u, 5u}) {
    const std::size_t i = k == 0 ? 0 : k == 1 ? 2 : k == 3 ? 4 : 6;
    EXPECT_EQ(e.ranges[i].va, a + k * kPage2M) << k;
    EXPECT_EQ(e.ranges[i].size, 2 * kPage4K);
    EXPECT_EQ(e.ranges[i + 1].va, a + k * kPage2M + 100 * kPage4K);
    EXPECT_EQ(e.ranges[i].flags.has(PageFlags::kWritable), k != 5);
    EXPECT_EQ(e.ranges[i].flags.has(PageFlags::kNoExecute), k == 5);
  }
  EXPECT_EQ(e.tables_replayed, 2u);  // the two links with the same permissions
  expect_agrees_with_walks(g, mode, e);
}

TEST(Enumerate, ASharedTableWhoseRangesMergedWithItsNeighboursIsCopiedExactly) {
  FakeGuest g(16 * kMiB, 4);
  const PagingMode mode = PagingMode::four_level();
  // PT1 (a) ends with the page just before PA X; PT2 (a + 2 MiB) maps X, X + 4K and its last
  // page; PT3 (a + 4 MiB) continues PT2's last page. In the listing PT2's first range is
  // merged into PT1's and its last one extended by PT3's, yet a second link to PT2 (at
  // a + 10 MiB) must list exactly PT2's three pages.
  const VirtAddr a(0xffff'c900'0000'0000ull);
  const std::uint64_t x = 0x80'0000;
  g.pt().map(a + kPage2M - kPage4K, PhysAddr(x - kPage4K), kPage4K);
  g.pt().map(a + kPage2M, PhysAddr(x), kPage4K);
  g.pt().map(a + kPage2M + kPage4K, PhysAddr(x + kPage4K), kPage4K);
  g.pt().map(a + 2 * kPage2M - kPage4K, PhysAddr(0xa0'0000), kPage4K);
  g.pt().map(a + 2 * kPage2M, PhysAddr(0xa0'1000), kPage4K);
  g.pt().set_entry(g.pt().entry_addr(a + 5 * kPage2M, 2), g.pt().entry(g.pt().entry_addr(a + kPage2M, 2)));
  const Enumeration e = enumerate(g.ram(), mode, g.cr3());
  ASSERT_EQ(e.ranges.size(), 4u);
  EXPECT_EQ(e.ranges[0].va, a + kPage2M - kPage4K);
  EXPECT_EQ(e.ranges[0].size, 3 * kPage4K);
  EXPECT_EQ(e.ranges[1].size, 2 * kPage4K);
  EXPECT_EQ(e.ranges[2], (MappedRange{a + 5 * kPage2M, PhysAddr(x), 2 * kPage4K, kPage4K, e.ranges[0].flags}));
  EXPECT_EQ(e.ranges[3], (MappedRange{a + 6 * kPage2M - kPage4K, PhysAddr(0xa0'0000), kPage4K, kPage4K,
                                      e.ranges[0].flags}));
  EXPECT_EQ(e.tables_replayed, 1u);
  expect_agrees_with_walks(g, mode, e);
}

TEST(Enumerate, TheLastPageOfTheAddressSpaceIsListedWithoutWrapping) {
  FakeGuest g(16 * kMiB, 5);
  const PagingMode mode = PagingMode::five_level();
  g.pt().map(VirtAddr(0xffff'ffff'ffff'e000ull), PhysAddr(0x40'0000), kPage4K);
  g.pt().map(VirtAddr(0xffff'ffff'ffff'f000ull), PhysAddr(0x40'1000), kPage4K);
  g.pt().map(VirtAddr(0), PhysAddr(0x40'2000), kPage4K);  // PA-contiguous, but no neighbour
  const Enumeration e = enumerate(g.ram(), mode, g.cr3());
  ASSERT_EQ(e.ranges.size(), 2u);
  EXPECT_EQ(e.ranges[0].va.value(), 0u);
  EXPECT_EQ(e.ranges[1].va.value(), 0xffff'ffff'ffff'e000ull);
  EXPECT_EQ(e.ranges[1].size, 2 * kPage4K);
  EXPECT_EQ(e.ranges[1].va_last().value(), ~0ull);
  expect_agrees_with_walks(g, mode, e);
}

TEST(Enumerate, ASelfReferenceListsTheTablesAsPagesAndEnds) {
  for (int levels : {4, 5}) {
    FakeGuest g(16 * kMiB, levels);
    const PagingMode mode = PagingMode::make(levels);
    g.pt().map(VirtAddr(kText), PhysAddr(0x40'0000), kPage4K);
    // Windows-style recursive slot: root[0x1ed] points at the root.
    const PhysAddr slot = g.pt().root() + 0x1ed * 8;
    g.pt().set_entry(slot, g.pt().root().value() | kTableBits);
    const Enumeration e = enumerate(g.ram(), mode, g.cr3());
    EXPECT_FALSE(e.truncated);
    // Every table (root, one per level down to the PT) appears as a page of the recursive
    // region, plus the text page itself.
    std::uint64_t pages = 0;
    for (const MappedRange& r : e.ranges) pages += r.size / kPage4K;
    EXPECT_GT(pages, static_cast<std::uint64_t>(levels));
    EXPECT_LT(e.tables_expanded, 64u);
    expect_agrees_with_walks(g, mode, e);
  }
}

TEST(Enumerate, AllEntriesPointingAtTheRootStaysBoundedAndSaysItWasCut) {
  FakeGuest g(16 * kMiB, 5);
  const PagingMode mode = PagingMode::five_level();
  // Every entry of the root points at the root: 512^5 "pages". A naive walk never ends.
  for (unsigned i = 0; i < kEntriesPerTable; ++i)
    g.pt().set_entry(g.pt().root() + i * 8, g.pt().root().value() | kTableBits);
  const auto start = std::chrono::steady_clock::now();
  const Enumeration e = enumerate(g.ram(), mode, g.cr3(), {.max_ranges = 100000});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(e.truncated);
  EXPECT_FALSE(e.truncated_reason.empty());
  EXPECT_LE(e.ranges.size(), 100000u);
  EXPECT_LE(e.tables_expanded, 5u);  // one table, expanded once per level
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(Enumerate, PointersPastRamAndReservedBitsSkipSubtreesAndSaySo) {
  FakeGuest g(16 * kMiB, 4);
  const PagingMode mode = PagingMode::make(4, 40);
  g.pt().map(VirtAddr(kText), PhysAddr(0x40'0000), kPage4K);
  g.pt().map(VirtAddr(kText + kPage2M), PhysAddr(0x40'0000), kPage4K);
  g.pt().map(VirtAddr(kText + 2 * kPage2M), PhysAddr(0x40'0000), kPage4K);
  g.pt().set_entry(g.pt().entry_addr(VirtAddr(kText + kPage2M), 2), 0x7'0000'0000ull | kTableBits);
  const PhysAddr bad = g.pt().entry_addr(VirtAddr(kText + 2 * kPage2M), 1);
  g.pt().set_entry(bad, g.pt().entry(bad) | (1ull << 44));
  const Enumeration e = enumerate(g.ram(), mode, g.cr3(), {.max_skipped = 1});
  ASSERT_EQ(e.ranges.size(), 1u);
  EXPECT_EQ(e.ranges[0].va.value(), kText);
  EXPECT_EQ(e.skipped_total, 2u);
  ASSERT_EQ(e.skipped.size(), 1u);
  EXPECT_EQ(e.skipped[0].fault.kind, FaultKind::kTableOutsideRam);
  EXPECT_EQ(e.skipped[0].va.value(), kText + kPage2M);
  EXPECT_EQ(e.skipped[0].span, kPage2M);
  // CR3 itself outside RAM.
  const Enumeration none = enumerate(g.ram(), mode, Cr3(0x10'0000'0000ull));
  EXPECT_TRUE(none.ranges.empty());
  EXPECT_EQ(none.skipped_total, 1u);
}

}  // namespace
}  // namespace haywire::arch
