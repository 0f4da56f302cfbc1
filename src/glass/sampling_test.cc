#include "haywire/glass/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

namespace haywire::glass {
namespace {

std::vector<bool> armed_pages(const SamplePlan& plan, std::uint64_t pages) {
  std::vector<bool> armed(pages, false);
  for (const PageIndexRange& r : plan.ranges) {
    for (std::uint64_t p = r.first; p < r.end(); ++p) armed[p] = true;
  }
  return armed;
}

void expect_sorted_disjoint(const SamplePlan& plan, std::uint64_t pages) {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < plan.ranges.size(); ++i) {
    EXPECT_GT(plan.ranges[i].count, 0u);
    EXPECT_LE(plan.ranges[i].end(), pages);
    if (i > 0) {
      EXPECT_GT(plan.ranges[i].first, plan.ranges[i - 1].end()) << "ranges must not touch";
    }
    total += plan.ranges[i].count;
  }
  EXPECT_EQ(total, plan.armed_pages);
}

TEST(PageGrid, FitsPagesIntoCellsInOrder) {
  const PageGrid grid = PageGrid::fit(2, 50);  // 16 cells, 4 pages each (the last 3 cells empty)
  EXPECT_EQ(grid.pages_per_cell, 4u);
  EXPECT_EQ(grid.cell_of(0), 0u);
  EXPECT_EQ(grid.cell_of(49), 12u);
  EXPECT_EQ(grid.pages_in(11), 4u);
  EXPECT_EQ(grid.pages_in(12), 2u);
  EXPECT_EQ(grid.pages_in(13), 0u);
  EXPECT_EQ(PageGrid::fit(8, 10).pages_per_cell, 1u);
}

TEST(Sampler, ArmsTheRequestedShareInSortedDisjointRanges) {
  const PageGrid grid = PageGrid::fit(8, 1 << 18);
  for (double rate : {0.05, 0.1, 0.15, 0.3, 0.5}) {
    for (std::uint64_t run : {0, 1, 3}) {
      const SamplePlan plan = Sampler(SamplerConfig{.run_pages = run}).plan(grid, rate, 7);
      expect_sorted_disjoint(plan, grid.page_count);
      const double actual = static_cast<double>(plan.armed_pages) / static_cast<double>(grid.page_count);
      EXPECT_NEAR(actual, rate, 0.01) << "rate " << rate << " run " << run;
    }
  }
}

TEST(Sampler, RespectsTheRangeBudget) {
  const PageGrid grid = PageGrid::fit(8, 1 << 20);
  const SamplePlan plan = Sampler(SamplerConfig{.max_ranges = 1000}).plan(grid, 0.1, 0);
  EXPECT_LE(plan.ranges.size(), 1001u);
  EXPECT_EQ(plan.run_pages, 105u);  // ceil(104858 armed / 1000 ranges)
}

// A small process gets at most one range per pages_per_range pages (each range the target
// wrote in costs a TLB flush to arm), a large one at most max_ranges.
TEST(Sampler, RespectsThePagesPerRangeBound) {
  const PageGrid small = PageGrid::fit(7, 16384);  // 64 MiB
  const SamplePlan plan = Sampler(SamplerConfig{.max_ranges = 2048, .pages_per_range = 32}).plan(small, 0.1, 0);
  EXPECT_LE(plan.ranges.size(), 16384u / 32 + 1);
  EXPECT_EQ(plan.run_pages, 4u);  // ceil(1639 armed / 512 ranges)
  EXPECT_NEAR(static_cast<double>(plan.armed_pages), 1638.4, 8.0);
  const SamplePlan unbounded = Sampler(SamplerConfig{.max_ranges = 2048, .pages_per_range = 0}).plan(small, 0.1, 0);
  EXPECT_EQ(unbounded.run_pages, 1u);
  EXPECT_GT(unbounded.ranges.size(), 1600u);
  const SamplePlan large = Sampler(SamplerConfig{.max_ranges = 2048, .pages_per_range = 32}).plan(PageGrid::fit(8, 1 << 20), 0.1, 0);
  EXPECT_LE(large.ranges.size(), 2049u) << "max_ranges still bounds a large process";
}

TEST(Sampler, EveryNeighbourhoodGetsSamples) {
  // Stratified: no stretch of the page line longer than one stratum is left without a sample.
  const PageGrid grid = PageGrid::fit(6, 100'000);
  const SamplePlan plan = Sampler(SamplerConfig{.run_pages = 2}).plan(grid, 0.1, 3);
  ASSERT_FALSE(plan.ranges.empty());
  EXPECT_LE(plan.ranges.front().first, 20u);
  for (std::size_t i = 1; i < plan.ranges.size(); ++i) {
    EXPECT_LE(plan.ranges[i].first - plan.ranges[i - 1].end(), 19u);
  }
  EXPECT_LE(grid.page_count - plan.ranges.back().end(), 20u);
}

TEST(Sampler, RotatesAndCoversEveryPageOncePerCycle) {
  const PageGrid grid = PageGrid::fit(4, 5000);
  const Sampler sampler(SamplerConfig{.seed = 42, .run_pages = 1});
  std::vector<int> times(grid.page_count, 0);
  std::set<std::uint64_t> firsts;
  for (std::uint64_t t = 0; t < 10; ++t) {  // rate 0.1: a cycle of 10 intervals
    const SamplePlan plan = sampler.plan(grid, 0.1, t);
    firsts.insert(plan.ranges.front().first);
    const auto armed = armed_pages(plan, grid.page_count);
    for (std::uint64_t p = 0; p < grid.page_count; ++p) times[p] += armed[p];
  }
  EXPECT_EQ(firsts.size(), 10u) << "each interval of a cycle must arm a different subset";
  EXPECT_TRUE(std::all_of(times.begin(), times.end(), [](int n) { return n == 1; }));
}

TEST(Sampler, IsDeterministicInSeedAndInterval) {
  const PageGrid grid = PageGrid::fit(8, 300'000);
  const Sampler a(SamplerConfig{.seed = 1});
  const Sampler b(SamplerConfig{.seed = 1});
  const Sampler c(SamplerConfig{.seed = 2});
  EXPECT_EQ(a.plan(grid, 0.1, 5).ranges, b.plan(grid, 0.1, 5).ranges);
  bool differs = false;
  for (std::uint64_t t = 0; t < 20; ++t) differs |= a.plan(grid, 0.1, t).ranges != c.plan(grid, 0.1, t).ranges;
  EXPECT_TRUE(differs) << "another seed must give another rotation";
}

TEST(Sampler, FullRateAndDegenerateInputs) {
  const PageGrid grid = PageGrid::fit(3, 1000);
  const Sampler sampler;
  const SamplePlan all = sampler.plan(grid, 1.0, 0);
  ASSERT_EQ(all.ranges.size(), 1u);
  EXPECT_EQ(all.ranges[0], (PageIndexRange{0, 1000}));
  EXPECT_TRUE(all.full(1000));
  EXPECT_TRUE(sampler.plan(PageGrid::fit(3, 0), 0.1, 0).ranges.empty());
  const SamplePlan nan = sampler.plan(grid, std::numeric_limits<double>::quiet_NaN(), 0);
  EXPECT_NEAR(static_cast<double>(nan.armed_pages), 1000 * kMinSamplingRate, 2);
  const SamplePlan tiny = sampler.plan(PageGrid::fit(3, 3), 0.1, 0);
  EXPECT_EQ(tiny.armed_pages, 1u);
}

TEST(PagesPerCell, CountsRangesAcrossCellBoundaries) {
  const PageGrid grid = PageGrid::fit(1, 14);  // 4 cells of 4 pages, the last holds 2
  const std::vector<PageIndexRange> ranges = {{1, 6}, {9, 1}, {12, 10}};
  const auto counts = pages_per_cell(grid, ranges);
  EXPECT_EQ(counts, (std::vector<std::uint32_t>{3, 3, 1, 2}));
}

TEST(Intersect, KeepsOnlyCommonPages) {
  const std::vector<PageIndexRange> a = {{0, 10}, {20, 5}, {30, 1}};
  const std::vector<PageIndexRange> b = {{5, 20}, {26, 5}};
  EXPECT_EQ(intersect(a, b), (std::vector<PageIndexRange>{{5, 5}, {20, 5}, {30, 1}}));
  EXPECT_TRUE(intersect(a, {}).empty());
}

TEST(PageIndexRanges, UnionMergesOverlapsAndNeighbours) {
  const std::vector<PageIndexRange> a{{0, 4}, {10, 2}, {20, 5}};
  const std::vector<PageIndexRange> b{{2, 4}, {12, 3}, {30, 1}};
  EXPECT_EQ(union_of(a, b), (std::vector<PageIndexRange>{{0, 6}, {10, 5}, {20, 5}, {30, 1}}));
  EXPECT_EQ(union_of(a, {}), a);
  EXPECT_EQ(union_of({}, b), b);
  // Consistent with intersect: |a u b| = |a| + |b| - |a n b|.
  auto pages = [](const std::vector<PageIndexRange>& v) {
    std::uint64_t n = 0;
    for (const auto& r : v) n += r.count;
    return n;
  };
  EXPECT_EQ(pages(union_of(a, b)), pages(a) + pages(b) - pages(intersect(a, b)));
  // Unsorted lists and empty ranges still give the normalized union.
  const std::vector<PageIndexRange> b_unsorted{{30, 1}, {7, 0}, {12, 3}, {2, 4}};
  EXPECT_EQ(union_of(a, b_unsorted), union_of(a, b));
  EXPECT_EQ(normalized({{5, 3}, {0, 2}, {2, 2}, {9, 0}, {4, 10}}), (std::vector<PageIndexRange>{{0, 14}}));
}

// Sampling pauses while it saves the target few faults, and resumes once the target writes
// pages again soon; a single interval either way does not switch.
TEST(SamplingPause, PausesWhileSamplingSavesLittleAndResumesOnRewrites) {
  SamplingPause pause;
  // A hot set: most of what is written was not armed (seen 100 of ~1000): sampling saves.
  for (int i = 0; i < 20; ++i) pause.note_sampled(100, 1000);
  EXPECT_FALSE(pause.paused());
  // A sweep: nearly every write is seen (it faulted anyway). Four in a row are not enough,
  // and a saving interval starts the count again.
  for (int i = 0; i < 4; ++i) pause.note_sampled(980, 1000);
  pause.note_sampled(500, 1000);
  for (int i = 0; i < 4; ++i) pause.note_sampled(980, 1000);
  EXPECT_FALSE(pause.paused());
  pause.note_sampled(1000, 1000);
  EXPECT_TRUE(pause.paused());
  // Sampled intervals while paused change nothing.
  pause.note_sampled(0, 1000);
  EXPECT_TRUE(pause.paused());

  // Full intervals: little rewritten (a sweep moves on) keeps the pause.
  for (int i = 0; i < 10; ++i) pause.note_full(1000, 50, 0.1);
  EXPECT_TRUE(pause.paused());
  // Half of it written again each interval: sampling at 10 % would save 45 % of the faults.
  pause.note_full(1000, 500, 0.1);
  pause.note_full(1000, 500, 0.1);
  pause.note_full(1000, 0, 0.1);
  pause.note_full(1000, 500, 0.1);
  pause.note_full(1000, 500, 0.1);
  EXPECT_TRUE(pause.paused());
  pause.note_full(1000, 500, 0.1);
  EXPECT_FALSE(pause.paused());
  // At a rate of 0.9 the same rewrites would save only 5 %: no reason to leave full tracking.
  SamplingPause busy;
  for (int i = 0; i < 5; ++i) busy.note_sampled(1000, 1000);
  ASSERT_TRUE(busy.paused());
  for (int i = 0; i < 10; ++i) busy.note_full(1000, 500, 0.9);
  EXPECT_TRUE(busy.paused());
}

// After the start or a pause every page is armed, so a process that rewrites its memory every
// two seconds faults on each write for those two seconds, sampled or not. Seen writes that only
// that full arming had armed, when their page was written recently, count as saved: sampling's
// steady state leaves them unarmed.
TEST(SamplingPause, WritesArmedOnlyByAFullArmingCountAsSaved) {
  SamplingPause pause;
  for (int i = 0; i < 10; ++i) pause.note_sampled(1000, 1000, 950);
  EXPECT_FALSE(pause.paused());
  // More than were seen cannot be spared.
  for (int i = 0; i < 5; ++i) pause.note_sampled(10, 1000, 5000);
  EXPECT_FALSE(pause.paused());
  // Pages never written before (a sweep's single pass) fault in any mode: no saving.
  for (int i = 0; i < 5; ++i) pause.note_sampled(1000, 1000, 0);
  EXPECT_TRUE(pause.paused());
}

// Each slot's last write, two bytes each: rewrites within the horizon, and among them those last
// written before the last interval that armed everything.
TEST(WriteHistory, CountsRewritesWithinTheHorizonAndThoseArmedSinceByAFullInterval) {
  WriteHistory history;
  history.reset(100);
  // Nothing written before: no rewrite. Slots past the size are ignored.
  auto first = history.record(3, std::vector<PageIndexRange>{{0, 10}, {95, 20}}, 20, 0);
  EXPECT_EQ(first.recent, 0u);
  EXPECT_EQ(first.before, 0u);
  history.record(10, std::vector<PageIndexRange>{{10, 10}}, 20, 0);
  // Interval 30, horizon 20, everything armed at 12: slots 0-9 were written 27 intervals ago
  // (too long), 10-19 20 ago (before 12), 95-99 27 ago; 50-59 never.
  auto later = history.record(30, std::vector<PageIndexRange>{{0, 20}, {50, 10}, {95, 5}}, 20, 12);
  EXPECT_EQ(later.recent, 10u);
  EXPECT_EQ(later.before, 10u);
  // Written again at 31 after everything was armed at 30: recent, not armed by it since.
  auto again = history.record(31, std::vector<PageIndexRange>{{10, 5}, {50, 10}}, 20, 30);
  EXPECT_EQ(again.recent, 15u);
  EXPECT_EQ(again.before, 0u);
  // Everything armed at 31 (its writes stayed unarmed): 0-9, written at 30, were armed by it.
  auto armed = history.record(33, std::vector<PageIndexRange>{{0, 10}, {10, 5}}, 20, 31);
  EXPECT_EQ(armed.recent, 15u);
  EXPECT_EQ(armed.before, 10u);

  // Growing keeps what was recorded; resetting forgets it.
  history.grow(200);
  EXPECT_EQ(history.size(), 200u);
  EXPECT_EQ(history.record(34, std::vector<PageIndexRange>{{0, 1}, {150, 1}}, 20, 0).recent, 1u);
  history.reset(200);
  EXPECT_EQ(history.record(35, std::vector<PageIndexRange>{{0, 200}}, 20, 0).recent, 0u);
  // Intervals wrap modulo 65,535 without losing ages.
  history.record(65534, std::vector<PageIndexRange>{{0, 1}}, 20, 0);
  EXPECT_EQ(history.record(65536, std::vector<PageIndexRange>{{0, 1}}, 20, 0).recent, 1u);
}

// An idle target (or one writing a few pages) saves nothing by sampling: paused. Disabled,
// nothing pauses.
TEST(SamplingPause, IdleTargetsPauseAndDisabledNeverDoes) {
  SamplingPause idle;
  for (int i = 0; i < 5; ++i) idle.note_sampled(0, 0);
  EXPECT_TRUE(idle.paused());
  // A full interval with nothing written does not resume either, nor one with a few pages
  // (below min_pages: one counter rewritten in a loop), however much of it sampling spares.
  for (int i = 0; i < 5; ++i) idle.note_full(0, 0, 0.1);
  for (int i = 0; i < 5; ++i) idle.note_full(3, 3, 0.1);
  EXPECT_TRUE(idle.paused());
  for (int i = 0; i < 3; ++i) idle.note_full(64, 64, 0.1);
  EXPECT_FALSE(idle.paused());
  // Nearly idle while sampled (an estimate of a few pages, none seen) pauses too.
  for (int i = 0; i < 5; ++i) idle.note_sampled(0, 5.5);
  EXPECT_TRUE(idle.paused());

  SamplingPauseConfig off;
  off.enabled = false;
  SamplingPause never(off);
  for (int i = 0; i < 50; ++i) never.note_sampled(1000, 1000);
  EXPECT_FALSE(never.paused());
}

}  // namespace
}  // namespace haywire::glass
