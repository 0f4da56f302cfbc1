#include "haywire/glass/accuracy.h"

#include <algorithm>
#include <limits>

#include <gtest/gtest.h>

#include "glass/testing/synthetic_workload.h"
#include "haywire/glass/hilbert.h"

namespace haywire::glass {
namespace {

DensityMap map_of(unsigned order, std::initializer_list<float> values) {
  DensityMap m(order);
  std::copy(values.begin(), values.end(), m.cells.begin());
  return m;
}

TEST(MeasureAccuracy, CountsHotCellsAndError) {
  // order 1: four cells. truth hot: 0, 1. estimate hot: 1, 2.
  const DensityMap truth = map_of(1, {1.0f, 0.5f, 0.0f, 0.25f});
  const DensityMap est = map_of(1, {0.25f, 0.75f, 0.5f, 0.25f});
  const AccuracyReport r = *measure_accuracy(est, truth);
  EXPECT_EQ(r.true_hot, 2u);
  EXPECT_EQ(r.estimated_hot, 2u);
  EXPECT_EQ(r.true_positives, 1u);
  EXPECT_DOUBLE_EQ(r.precision, 0.5);
  EXPECT_DOUBLE_EQ(r.recall, 0.5);
  EXPECT_DOUBLE_EQ(r.f1, 0.5);
  EXPECT_DOUBLE_EQ(r.normalized_error, (0.75 + 0.25 + 0.5 + 0.0) / 1.75);
  EXPECT_FALSE(r.trivial());
}

TEST(MeasureAccuracy, EdgeCasesOfEmptyHotSets) {
  const DensityMap idle = map_of(1, {0, 0, 0, 0});
  const DensityMap one = map_of(1, {0, 1, 0, 0});
  const AccuracyReport both_idle = *measure_accuracy(idle, idle);
  EXPECT_TRUE(both_idle.trivial());
  EXPECT_DOUBLE_EQ(both_idle.f1, 1.0);
  EXPECT_DOUBLE_EQ(both_idle.normalized_error, 0.0);
  const AccuracyReport missed = *measure_accuracy(idle, one);
  EXPECT_DOUBLE_EQ(missed.f1, 0.0);
  EXPECT_DOUBLE_EQ(missed.recall, 0.0);
  EXPECT_DOUBLE_EQ(missed.normalized_error, 1.0);
  const AccuracyReport invented = *measure_accuracy(one, idle);
  EXPECT_DOUBLE_EQ(invented.f1, 0.0);
  EXPECT_DOUBLE_EQ(invented.precision, 0.0);
  EXPECT_DOUBLE_EQ(invented.normalized_error, 1.0);  // denominator floored at 1
  EXPECT_DOUBLE_EQ(measure_accuracy(one, one)->f1, 1.0);
  EXPECT_DOUBLE_EQ(measure_accuracy(one, one, 2.0f)->f1, 1.0);  // threshold above everything
}

TEST(MeasureAccuracy, RejectsMapsOfDifferentOrders) {
  EXPECT_FALSE(measure_accuracy(DensityMap(2), DensityMap(3)).has_value());
}

AccuracyReport with_f1(double f1) {
  AccuracyReport r;
  r.f1 = f1;
  r.true_hot = 10;
  r.estimated_hot = 10;
  r.true_positives = 9;
  return r;
}

TEST(AdaptiveRate, RaisesAtOnceLowersSlowlyAndHoldsInTheBand) {
  AdaptiveRate rate;
  EXPECT_DOUBLE_EQ(rate.rate(), 0.10);
  EXPECT_DOUBLE_EQ(rate.update(with_f1(0.8)), 0.15);
  EXPECT_DOUBLE_EQ(rate.update(with_f1(0.93)), 0.15);  // in [target, comfortable): hold
  EXPECT_DOUBLE_EQ(rate.update(with_f1(0.98)), 0.15);
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.12, 1e-12);  // second comfortable since the change
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.12, 1e-12);  // the count starts again
  EXPECT_NEAR(rate.update(with_f1(0.95)), 0.12, 1e-12);  // the band holds the rate and the count
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.096, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.096, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(0.85)), 0.144, 1e-12);  // a miss raises at once and resets the count
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.144, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.1152, 1e-12);
}

TEST(AdaptiveRate, LowersAtOnceWhenTheReconstructionIsNearlyExact) {
  AdaptiveRate rate;
  EXPECT_NEAR(rate.update(with_f1(0.99)), 0.08, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(1.0)), 0.064, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(0.98)), 0.064, 1e-12);  // comfortable only: the count again
  EXPECT_NEAR(rate.update(with_f1(0.995)), 0.0512, 1e-12);
  EXPECT_NEAR(rate.update(with_f1(0.985)), 0.0512, 1e-12);  // the eager step reset the count
  EXPECT_NEAR(rate.update(with_f1(0.85)), 0.0768, 1e-12);
  AdaptiveRate patient(AdaptiveRateConfig{.eager_f1 = 1.01});  // the old rule: never eager
  EXPECT_DOUBLE_EQ(patient.update(with_f1(1.0)), 0.10);
  EXPECT_NEAR(patient.update(with_f1(1.0)), 0.08, 1e-12);
}

TEST(AdaptiveRate, StaysWithinBoundsAndIgnoresTrivialIntervals) {
  AdaptiveRate rate;
  for (int i = 0; i < 20; ++i) rate.update(with_f1(0.1));
  EXPECT_DOUBLE_EQ(rate.rate(), kMaxSamplingRate);
  for (int i = 0; i < 100; ++i) rate.update(with_f1(1.0));
  EXPECT_DOUBLE_EQ(rate.rate(), kMinSamplingRate);
  AccuracyReport idle;  // nothing hot anywhere
  for (int i = 0; i < 10; ++i) rate.update(idle);
  EXPECT_DOUBLE_EQ(rate.rate(), kMinSamplingRate);
  AdaptiveRate fixed(AdaptiveRateConfig{.adaptive = false});
  EXPECT_DOUBLE_EQ(fixed.update(with_f1(0.0)), 0.10);
}

TEST(CalibrationController, EveryNthIntervalCalibrates) {
  const PageGrid grid = PageGrid::fit(6, 20'000);
  CalibrationController c(grid, CalibrationConfig{.every = 4});
  EXPECT_FALSE(c.is_calibration(0));
  EXPECT_TRUE(c.is_calibration(3));
  EXPECT_TRUE(c.is_calibration(7));
  EXPECT_FALSE(c.whole_calibrations());
  EXPECT_FALSE(c.full_follows(2)) << "a window, not a full interval";
  // The calibration arms the sampled plan and the window: about 10 % + 25 % - their overlap.
  const SamplePlan calibration = c.plan(3);
  EXPECT_FALSE(calibration.full(grid.page_count));
  EXPECT_EQ(calibration.ranges, union_of(c.sampled_plan(3).ranges, c.calibration_window()));
  EXPECT_NEAR(static_cast<double>(calibration.armed_pages), 20'000 * (0.1 + 0.25 - 0.025), 400);
  EXPECT_FALSE(c.plan(4).full(grid.page_count));
  EXPECT_NEAR(static_cast<double>(c.plan(4).armed_pages), 2000, 2);
  // Whole calibrations (window_share 1): a full interval.
  CalibrationController whole(grid, CalibrationConfig{.every = 4, .window_share = 1.0});
  EXPECT_TRUE(whole.whole_calibrations());
  EXPECT_TRUE(whole.plan(3).full(grid.page_count));
  EXPECT_TRUE(whole.full_follows(2));
  EXPECT_FALSE(whole.plan(4).full(grid.page_count));
  CalibrationController never(grid, CalibrationConfig{.every = 0});
  EXPECT_FALSE(never.is_calibration(0));
  EXPECT_FALSE(never.is_calibration(99));
}

// Backing off: comfortable calibrations double the gap up to max_every; one below the
// comfortable F1 brings it back to `every`; a calibration that was due but did not happen
// stays due.
TEST(CalibrationController, BacksOffWhileAccurateAndReturnsOnAMiss) {
  using testing::SyntheticWorkload;
  using testing::Workload;
  const SyntheticWorkload steady(testing::WorkloadSpec{.kind = Workload::kSteadyHotSet});
  const PageGrid grid = PageGrid::fit(8, steady.spec().page_count);
  CalibrationController c(grid, CalibrationConfig{.every = 10, .max_every = 40, .window_share = 1.0});
  EXPECT_FALSE(c.is_calibration(8));
  ASSERT_TRUE(c.is_calibration(9));
  EXPECT_TRUE(c.is_calibration(10)) << "due until it happens";
  EXPECT_FALSE(c.full_follows(9)) << "9 is calibrated as it ends: 10 is sampled";
  EXPECT_TRUE(c.full_follows(8));
  std::vector<std::uint64_t> at;
  std::uint64_t interval = 9;
  for (int k = 0; k < 4; ++k) {
    auto r = c.calibrate(interval, steady.written(interval));
    ASSERT_TRUE(r.has_value()) << r.error().message();
    ASSERT_GE(r->accuracy.f1, 0.9) << "the steady hot set meets the target";
    at.push_back(interval);
    while (!c.is_calibration(++interval)) {
    }
  }
  EXPECT_EQ(at, (std::vector<std::uint64_t>{9, 29, 69, 109}));
  EXPECT_EQ(c.calibration_gap(), 40u);
  EXPECT_FALSE(c.plan(interval - 1).full(grid.page_count));
  EXPECT_TRUE(c.plan(interval).full(grid.page_count));
  // A miss: uniformly scattered writes, which sampling cannot reconstruct (no locality).
  const SyntheticWorkload scattered(testing::WorkloadSpec{.kind = Workload::kRandomScattered});
  auto miss = c.calibrate(interval, scattered.written(interval));
  ASSERT_TRUE(miss.has_value());
  ASSERT_LT(miss->accuracy.f1, 0.9);
  EXPECT_EQ(c.calibration_gap(), 10u);
  EXPECT_FALSE(c.is_calibration(interval + 9));
  EXPECT_TRUE(c.is_calibration(interval + 10));
  // max_every <= every: the fixed schedule, whatever the results.
  CalibrationController fixed(grid, CalibrationConfig{.every = 10, .max_every = 10});
  ASSERT_TRUE(fixed.calibrate(9, steady.written(9)).has_value());
  EXPECT_TRUE(fixed.is_calibration(19));
  EXPECT_FALSE(fixed.is_calibration(20));
}

// When most of a plan's ranges need re-protecting at each arming (the process writes
// everywhere), the plan gets fewer ranges: about max_rearms / share; when few do, the cap
// lifts again. (A new plan every interval here: with held plans the cap applies from the
// next one, below.)
TEST(CalibrationController, CapsRangesByTheMeasuredReArmCost) {
  const PageGrid grid = PageGrid::fit(7, 16384);  // 64 MiB
  CalibrationController c(grid, CalibrationConfig{.hold_intervals = 1, .rearm = {.max_rearms = 128, .min_ranges = 64}});
  const std::size_t uncapped = c.sampled_plan(0).ranges.size();
  EXPECT_GE(uncapped, 400u) << "runs of 4 pages: the one-range-per-32-pages bound";
  EXPECT_EQ(c.cost_cap(), std::numeric_limits<std::uint64_t>::max());
  c.note_arming(512, 512);
  c.note_arming(512, 512);  // share 0.75
  EXPECT_NEAR(c.rearm_share(), 0.75, 1e-9);
  EXPECT_EQ(c.cost_cap(), 170u);
  EXPECT_LE(c.sampled_plan(1).ranges.size(), 171u);
  for (int k = 0; k < 8; ++k) c.note_arming(170, 2);
  EXPECT_GT(c.cost_cap(), 512u);
  EXPECT_GE(c.sampled_plan(2).ranges.size() + 1, uncapped) << "the cap lifted";
  // Never below min_ranges, and no cap at all with max_rearms 0.
  for (int k = 0; k < 8; ++k) c.note_arming(100, 100);
  EXPECT_EQ(c.cost_cap(), 128u);
  CalibrationController off(grid, CalibrationConfig{.rearm = {.max_rearms = 0}});
  off.note_arming(512, 512);
  EXPECT_EQ(off.sampled_plan(0).ranges.size(), uncapped);
}

// A plan is held for hold_intervals intervals: the same pages every interval, whatever the
// cost cap does meanwhile (its first arming, which re-protects nearly every range, is not
// counted). The next hold brings the next phase, planned under the cap measured by then.
TEST(CalibrationController, HoldsAPlanAndCapsTheNextOne) {
  const PageGrid grid = PageGrid::fit(7, 16384);
  CalibrationController c(grid, CalibrationConfig{.hold_intervals = 20, .rearm = {.max_rearms = 128, .min_ranges = 64}});
  const SamplePlan first = c.sampled_plan(0);
  c.note_arming(first.ranges.size(), first.ranges.size());  // the first arming: not counted
  EXPECT_EQ(c.rearm_share(), 0.0);
  c.note_arming(512, 512);
  c.note_arming(512, 512);
  EXPECT_EQ(c.cost_cap(), 170u);
  for (std::uint64_t i : {1u, 7u, 19u}) EXPECT_EQ(c.sampled_plan(i).ranges, first.ranges) << "interval " << i;
  const SamplePlan next = c.sampled_plan(20);
  EXPECT_LE(next.ranges.size(), 171u);
  EXPECT_NE(next.ranges.front().first, first.ranges.front().first) << "the next phase";
  EXPECT_EQ(c.sampled_plan(39).ranges, next.ranges);
  // A calibration replays the plan its interval would have had: the held one.
  EXPECT_EQ(c.plan(25).ranges, next.ranges);
}

// The defaults: a plan is held for 50 intervals (each new plan re-protects most of its ranges
// at once, one TLB shootdown each), and the cap aims at 32 re-protects per interval.
TEST(CalibrationController, DefaultsHoldFiftyIntervalsAndAimAt32ReprotectsAnInterval) {
  const PageGrid grid = PageGrid::fit(7, 16384);
  CalibrationController c(grid);
  const SamplePlan first = c.sampled_plan(0);
  c.note_arming(first.ranges.size(), first.ranges.size());  // the first arming: not counted
  for (int k = 0; k < 30; ++k) c.note_arming(1000, 100);    // share 0.1
  EXPECT_NEAR(c.rearm_share(), 0.1, 1e-6);
  EXPECT_NEAR(static_cast<double>(c.cost_cap()), 320.0, 1.0);
  EXPECT_EQ(c.sampled_plan(49).ranges, first.ranges);
  const SamplePlan next = c.sampled_plan(50);
  EXPECT_NE(next.ranges, first.ranges);
  EXPECT_LE(next.ranges.size(), 321u);
}

// How long a page sampled mode left unarmed stays so: until the windows come round to it (four
// calibrations of a quarter each, at the gap calibrations back off to), one calibration when
// they are whole, or a plan's hold without calibrations.
TEST(CalibrationController, UnarmedHorizonIsTheWindowCycleOrThePlanHold) {
  const PageGrid grid = PageGrid::fit(7, 16384);
  EXPECT_EQ(CalibrationController(grid).unarmed_horizon(), 40u);
  EXPECT_EQ(CalibrationController(grid, CalibrationConfig{.every = 10, .max_every = 40}).unarmed_horizon(), 160u);
  EXPECT_EQ(CalibrationController(grid, CalibrationConfig{.every = 20, .window_share = 0.1}).unarmed_horizon(), 200u);
  EXPECT_EQ(CalibrationController(grid, CalibrationConfig{.every = 10, .window_share = 1.0}).unarmed_horizon(), 10u);
  EXPECT_EQ(CalibrationController(grid, CalibrationConfig{.every = 0}).unarmed_horizon(), 50u);
}

TEST(CalibrationController, MeasuresTheSampledSubsetOfAFullInterval) {
  using testing::SyntheticWorkload;
  using testing::Workload;
  const testing::WorkloadSpec spec{.kind = Workload::kSteadyHotSet};
  const SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(8, spec.page_count);
  CalibrationController c(grid, CalibrationConfig{.every = 10, .window_share = 1.0});
  EXPECT_FALSE(c.last().has_value());
  auto result = c.calibrate(9, workload.written(9));
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_TRUE(result->whole);
  // The full map is exact: the hot set is four blocks of 1024 cells written at p = 0.9.
  EXPECT_NEAR(static_cast<double>(result->accuracy.true_hot), 4096, 40);
  EXPECT_GE(result->accuracy.f1, 0.9);
  ASSERT_TRUE(c.last().has_value());
  EXPECT_DOUBLE_EQ(c.last()->f1, result->accuracy.f1);
  EXPECT_EQ(result->rate_before, 0.10);
}

// The window is a quarter of the line in 16 evenly spaced blocks of whole cells, and moves on
// by a block at each calibration: four calibrations cover every page once.
TEST(CalibrationController, WindowsCoverEveryCellOnceInTurn) {
  const PageGrid grid = PageGrid::fit(8, 100'003);  // 2 pages per cell, the last cell partial
  CalibrationController c(grid, CalibrationConfig{.every = 1});
  std::vector<std::uint32_t> times(grid.page_count, 0);
  for (std::uint64_t k = 0; k < 4; ++k) {
    const std::vector<PageIndexRange> window = c.calibration_window();
    EXPECT_EQ(window, normalized(window));
    EXPECT_LE(window.size(), 16u);
    EXPECT_GE(window.size(), 15u);
    std::uint64_t pages = 0;
    for (const PageIndexRange& r : window) {
      EXPECT_EQ(r.first % grid.pages_per_cell, 0u) << "blocks start at a cell";
      EXPECT_TRUE(r.end() % grid.pages_per_cell == 0 || r.end() == grid.page_count) << "and end at one";
      pages += r.count;
      for (std::uint64_t p = r.first; p < r.end(); ++p) ++times[p];
    }
    EXPECT_NEAR(static_cast<double>(pages), 0.25 * static_cast<double>(grid.page_count), 16.0 * 4 * static_cast<double>(grid.pages_per_cell))
        << "calibration " << k;
    ASSERT_TRUE(c.calibrate(k, {}).has_value());
  }
  EXPECT_EQ(std::count(times.begin(), times.end(), 1u), static_cast<std::ptrdiff_t>(grid.page_count))
      << "every page once in four calibrations";
  EXPECT_EQ(c.calibration_window(), CalibrationController(grid, CalibrationConfig{}).calibration_window())
      << "then the cycle starts again";
  // A line shorter than 16 cells: one block per cell at most, never an empty window.
  CalibrationController tiny(PageGrid::fit(1, 3), CalibrationConfig{.every = 1});
  EXPECT_FALSE(tiny.calibration_window().empty());
}

// A window calibration judges the reconstruction on the window's cells only: writes the plan
// cannot see elsewhere do not count against it, and the window's own map is exact.
TEST(CalibrationController, MeasuresAccuracyOnTheWindowOnly) {
  const PageGrid grid = PageGrid::fit(8, 1 << 16);  // one page per cell
  CalibrationController c(grid, CalibrationConfig{.every = 1, .rate = {.adaptive = false}});
  const std::vector<PageIndexRange> window = c.calibration_window();
  // The first half of every window block written (a hot area the plan sees), and outside the
  // window single pages between the plan's runs (which no reconstruction can know).
  std::vector<PageIndexRange> written;
  std::uint64_t hot = 0;
  for (const PageIndexRange& r : window) {
    written.push_back({r.first, r.count / 2});
    hot += r.count / 2;
  }
  const std::vector<PageIndexRange> plan = c.sampled_plan(0).ranges;
  const std::vector<PageIndexRange> outside_plan = [&] {
    std::vector<PageIndexRange> out;
    std::uint64_t at = 0;
    for (const PageIndexRange& r : union_of(plan, window)) {
      if (r.first > at) out.push_back({at, r.first - at});
      at = r.end();
    }
    if (at < grid.page_count) out.push_back({at, grid.page_count - at});
    return out;
  }();
  for (const PageIndexRange& r : outside_plan) written.push_back({r.first, 1});
  written = normalized(std::move(written));
  auto result = c.calibrate(0, written);
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_FALSE(result->whole);
  EXPECT_EQ(result->accuracy.true_hot, hot) << "only the window's cells are the truth";
  EXPECT_GE(result->accuracy.f1, 0.9);
  // The exact map is the window's: nothing outside it.
  double outside = 0.0;
  for (const PageIndexRange& r : outside_plan) {
    for (std::uint64_t d = r.first; d < r.end(); ++d) {
      const Cell cell = hilbert_d2xy(grid.order, d);
      outside += result->full.at(cell.x, cell.y);
    }
  }
  EXPECT_EQ(outside, 0.0);
  // The same writes judged on every cell (a whole calibration) count the scattered pages.
  CalibrationController whole(grid, CalibrationConfig{.every = 1, .window_share = 1.0, .rate = {.adaptive = false}});
  auto all = whole.calibrate(0, written);
  ASSERT_TRUE(all.has_value());
  EXPECT_GT(all->accuracy.true_hot, hot + outside_plan.size() / 2);
}

TEST(MeasureAccuracy, CountsOnlyTheMaskedCells) {
  DensityMap truth(2), estimate(2);
  truth.cells[0] = 1.0f;
  estimate.cells[0] = 1.0f;
  truth.cells[5] = 1.0f;  // missed, but masked out
  std::vector<std::uint8_t> mask(16, 1);
  mask[5] = 0;
  auto masked = measure_accuracy(estimate, truth, kDefaultHotThreshold, mask);
  ASSERT_TRUE(masked.has_value());
  EXPECT_EQ(masked->true_hot, 1u);
  EXPECT_DOUBLE_EQ(masked->f1, 1.0);
  EXPECT_DOUBLE_EQ(masked->normalized_error, 0.0);
  auto unmasked = measure_accuracy(estimate, truth);
  ASSERT_TRUE(unmasked.has_value());
  EXPECT_LT(unmasked->f1, 1.0);
  EXPECT_FALSE(measure_accuracy(estimate, truth, kDefaultHotThreshold, std::vector<std::uint8_t>(15, 1)).has_value())
      << "a mask of the wrong size";
}

TEST(CalibrationController, CountsOnlyLiveSlots) {
  // Half of the line is reserved for unmapped memory; the live half is written in full. With
  // the reserved slots counted as pages every density would be diluted below the hot threshold.
  const PageGrid grid = PageGrid::fit(4, 1024);  // 256 cells x 4 slots
  CalibrationController c(grid, CalibrationConfig{.every = 1, .window_share = 1.0, .ranges = {.adaptive = false}});
  const std::vector<PageIndexRange> written = {{0, 512}};
  c.set_live({{0, 1024}});
  auto all_live = c.calibrate(0, written);
  ASSERT_TRUE(all_live.has_value());
  EXPECT_EQ(all_live->accuracy.true_hot, 128u);
  std::vector<PageIndexRange> alternate;  // slots 0,1 of each cell live, 2,3 reserved
  for (std::uint64_t s = 0; s < 1024; s += 4) alternate.push_back({s, 2});
  c.set_live(alternate);
  const std::vector<PageIndexRange> everything = {{0, 1024}};
  auto half_live = c.calibrate(1, everything);
  ASSERT_TRUE(half_live.has_value());
  EXPECT_EQ(half_live->accuracy.true_hot, 256u);
  EXPECT_FLOAT_EQ(half_live->full.cells[0], 1.0f);  // 2 of 2 live pages, not 2 of 4
  EXPECT_DOUBLE_EQ(half_live->accuracy.f1, 1.0);
}

TEST(CalibrationController, RaisesTheRateWhereReconstructionCannotWork) {
  // Scattered writes have no locality: F1 stays low, so the rate climbs to the maximum.
  const testing::WorkloadSpec spec{.kind = testing::Workload::kRandomScattered, .page_count = 1 << 14};
  const testing::SyntheticWorkload workload(spec);
  CalibrationController c(PageGrid::fit(6, spec.page_count),
                          CalibrationConfig{.every = 1, .ranges = {.adaptive = true}});
  for (std::uint64_t t = 0; t < 8; ++t) {
    auto result = c.calibrate(t, workload.written(t));
    ASSERT_TRUE(result.has_value());
    EXPECT_LT(result->accuracy.f1, 0.9);
  }
  EXPECT_DOUBLE_EQ(c.rate(), kMaxSamplingRate);
  EXPECT_EQ(c.range_budget(), RangeBudgetConfig{}.max_ranges) << "misses double the range budget too";
}

TEST(CalibrationController, KeepsTheFewestRangesThatStillReconstructWell) {
  // A sweep has long runs of written pages: far fewer, longer runs than the initial 2048
  // reconstruct it as well, so the budget drops, and the next calibrations at the new budget
  // still meet the target.
  const testing::WorkloadSpec spec{.kind = testing::Workload::kSequentialSweep};
  const testing::SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(8, spec.page_count);
  CalibrationController c(grid, CalibrationConfig{.every = 1, .ranges = {.adaptive = true}});
  ASSERT_EQ(c.range_budget(), SamplerConfig{}.max_ranges);
  auto first = c.calibrate(0, workload.written(0));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->ranges_before, SamplerConfig{}.max_ranges);
  EXPECT_EQ(first->ranges_after, first->ranges_before / 2) << "one step per calibration";
  EXPECT_EQ(c.range_budget(), first->ranges_after);
  EXPECT_LE(c.sampled_plan(1).ranges.size(), c.range_budget() + 1);
  for (std::uint64_t t = 1; t < 8; ++t) {
    auto next = c.calibrate(t, workload.written(t));
    ASSERT_TRUE(next.has_value());
    EXPECT_GE(next->accuracy.f1, 0.9) << "interval " << t << " at " << next->ranges_before << " ranges";
    EXPECT_GE(next->ranges_after, RangeBudgetConfig{}.min_ranges);
  }
  EXPECT_LE(c.range_budget(), SamplerConfig{}.max_ranges / 4) << "a sweep needs far fewer ranges";

  // Fixed budget (the default): nothing moves.
  CalibrationController fixed(grid, CalibrationConfig{.every = 1});
  ASSERT_TRUE(fixed.calibrate(0, workload.written(0)).has_value());
  EXPECT_EQ(fixed.range_budget(), SamplerConfig{}.max_ranges);
}

}  // namespace
}  // namespace haywire::glass
