#include "haywire/glass/page_bitmap.h"

#include <random>

#include <gtest/gtest.h>

namespace haywire::glass {
namespace {

constexpr std::uint64_t kP = kPageSize;

PageRange R(std::uint64_t first_page, std::uint64_t end_page) {
  return {VirtAddr(first_page * kP), VirtAddr(end_page * kP)};
}

// Three frame ranges: one that ends mid-word, one that spans several words, one page alone.
std::vector<PageRange> frame() { return {R(10, 75), R(100, 300), R(400, 401)}; }

TEST(PageBitmap, AddRemoveAndRunsStayInsideTheFrame) {
  PageBitmap set(frame());
  EXPECT_EQ(set.frame_pages(), 65u + 200 + 1);
  EXPECT_TRUE(set.empty());
  // Pages outside the frame are ignored; a range across a hole lands in both frame ranges.
  set.add(R(0, 12));
  set.add(R(70, 110));
  set.add(R(400, 500));
  EXPECT_EQ(set.ranges(), (std::vector<PageRange>{R(10, 12), R(70, 75), R(100, 110), R(400, 401)}));
  EXPECT_EQ(set.count(), 2u + 5 + 10 + 1);
  set.remove(R(74, 101));
  EXPECT_EQ(set.ranges(), (std::vector<PageRange>{R(10, 12), R(70, 74), R(101, 110), R(400, 401)}));
  set.fill();
  EXPECT_EQ(set.ranges(), frame());
  EXPECT_EQ(set.count(), set.frame_pages());
  set.clear();
  EXPECT_TRUE(set.ranges().empty());
}

TEST(PageBitmap, ContainsNeedsEveryPageInTheSetAndInTheFrame) {
  PageBitmap set(frame());
  set.add(R(120, 200));
  EXPECT_TRUE(set.contains(R(120, 200)));
  EXPECT_TRUE(set.contains(R(150, 151)));
  EXPECT_FALSE(set.contains(R(119, 130)));
  EXPECT_FALSE(set.contains(R(199, 201)));
  set.fill();
  EXPECT_TRUE(set.contains(R(10, 75)));
  EXPECT_FALSE(set.contains(R(70, 110)));  // crosses the hole between two frame ranges
  EXPECT_FALSE(set.contains(R(0, 11)));    // starts before the frame
  EXPECT_FALSE(set.contains(R(400, 402)));  // ends after it
}

TEST(PageBitmap, RunsThatMeetAcrossAdjacentFrameRangesJoin) {
  // A frame that is not coalesced (two ranges that touch) still yields normalized ranges.
  PageBitmap set({R(0, 64), R(64, 130)});
  set.add(R(60, 70));
  EXPECT_EQ(set.ranges(), (std::vector<PageRange>{R(60, 70)}));
  int runs = 0;
  set.for_each_run([&runs](const PageRange&) { ++runs; });
  EXPECT_EQ(runs, 2);
}

TEST(PageBitmap, RebasedKeepsSharedPagesAndClearsNewOnes) {
  PageBitmap set(frame());
  set.add(R(60, 120));
  PageBitmap moved = set.rebased({R(50, 65), R(110, 200), R(500, 600)});
  EXPECT_EQ(moved.ranges(), (std::vector<PageRange>{R(60, 65), R(110, 120)}));
  EXPECT_EQ(set.rebased(frame()), set);
}

// Every operation agrees with the range-list functions the tracker used before, on random
// fragmented sets (sorted and unsorted input, ranges straddling the frame's holes).
TEST(PageBitmap, AgreesWithRangeListsOnRandomSets) {
  std::mt19937_64 rng(7);
  const std::vector<PageRange> f{R(3, 70), R(128, 1000), R(1001, 1100), R(2000, 2300)};
  auto random_ranges = [&rng](std::size_t n) {
    std::vector<PageRange> out;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t a = rng() % 2400;
      out.push_back(R(a, a + 1 + rng() % 40));
    }
    return out;
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<PageRange> a = random_ranges(1 + rng() % 60);
    std::vector<PageRange> b = random_ranges(1 + rng() % 60);
    PageBitmap sa(f);
    PageBitmap sb(f);
    sa.add(a);  // unsorted
    normalize_ranges(a);
    normalize_ranges(b);
    sb.add(b);  // sorted
    const std::vector<PageRange> ra = intersect_ranges(a, f);
    const std::vector<PageRange> rb = intersect_ranges(b, f);
    ASSERT_EQ(sa.ranges(), ra);
    ASSERT_EQ(sb.ranges(), rb);
    std::uint64_t pages = 0;
    for (const PageRange& r : ra) pages += r.pages();
    ASSERT_EQ(sa.count(), pages);

    PageBitmap u = sa;
    u |= sb;
    ASSERT_EQ(u.ranges(), union_ranges(ra, rb));
    PageBitmap i = sa;
    i &= sb;
    ASSERT_EQ(i.ranges(), intersect_ranges(ra, rb));
    PageBitmap d = sa;
    d.subtract(sb);
    ASSERT_EQ(d.ranges(), subtract_ranges(ra, rb));
    PageBitmap removed = sa;
    removed.remove(b);
    ASSERT_EQ(removed, d);
    for (const PageRange& r : b) {
      ASSERT_EQ(sa.contains(r), intersect_ranges(ra, {r}) == std::vector<PageRange>{r}) << round;
    }
  }
}

TEST(PageBitmap, EmptyFrameAndEmptyRanges) {
  PageBitmap none;
  none.add(R(0, 100));
  none.fill();
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(none.ranges().empty());
  EXPECT_FALSE(none.contains(R(0, 1)));
  PageBitmap set(frame());
  set.add(R(20, 20));
  EXPECT_TRUE(set.empty());
  EXPECT_TRUE(set.contains(R(20, 20)));
}

}  // namespace
}  // namespace haywire::glass
