#include "haywire/glass/detectors.h"

#include <gtest/gtest.h>

#include "glass/testing/synthetic_workload.h"
#include "haywire/glass/reconstruct.h"

namespace haywire::glass {
namespace {

using testing::SyntheticWorkload;
using testing::Workload;
using testing::WorkloadSpec;

struct Fired {
  std::vector<std::uint64_t> avalanche;
  std::vector<std::uint64_t> phase;
  std::vector<Detection> phase_detections;
  std::vector<Detection> avalanche_detections;
};

// Runs both detectors over a workload's intervals, on exact maps or on maps reconstructed from
// 10% samples.
// Order 7 and 2^16 pages (4 per cell, as in the benchmark at order 8) keep the test fast.
Fired run(Workload w, bool sampled = false) {
  const WorkloadSpec spec{.kind = w, .page_count = 1 << 16, .intervals = 30};
  const SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(7, spec.page_count);
  AvalancheDetector avalanche;
  PhaseTransitionDetector phase;
  Reconstructor reconstructor(7);
  Fired fired;
  for (std::uint64_t t = 0; t < spec.intervals; ++t) {
    const auto written = workload.written(t);
    DensityMap map;
    if (sampled) {
      EXPECT_TRUE(reconstructor.reconstruct(observe(grid, Sampler().plan(grid, 0.1, t).ranges, written), map));
    } else {
      map = exact_density(observe(grid, full_plan(grid).ranges, written));
    }
    Detection a = avalanche.update(map);
    Detection p = phase.update(map);
    if (a.detected) {
      fired.avalanche.push_back(t);
      fired.avalanche_detections.push_back(std::move(a));
    }
    if (p.detected) {
      fired.phase.push_back(t);
      fired.phase_detections.push_back(std::move(p));
    }
  }
  return fired;
}

std::size_t count(const std::vector<std::uint8_t>& mask, std::uint8_t value) {
  return static_cast<std::size_t>(std::count(mask.begin(), mask.end(), value));
}

TEST(AvalancheDetector, FiresOnTheBurstOnly) {
  for (bool sampled : {false, true}) {
    const Fired f = run(Workload::kBurst, sampled);
    ASSERT_EQ(f.avalanche, (std::vector<std::uint64_t>{15})) << "sampled " << sampled;
    EXPECT_TRUE(f.phase.empty()) << "the working set grew for one interval, it did not move";
    const Detection& d = f.avalanche_detections[0];
    ASSERT_EQ(d.mask.size(), 16384u);
    // 64 chunks of 64 pages = 16 cells each: up to 1024 cells where the burst spread to.
    EXPECT_GT(count(d.mask, kMaskEntered), 750u);
    EXPECT_LE(count(d.mask, kMaskEntered), 1100u);
    EXPECT_GT(d.measure, 4.0);
  }
}

TEST(AvalancheDetector, NeedsSpreadAcrossBlocks) {
  // The same jump in active cells inside one coarse block is a hot spot, not an avalanche.
  AvalancheDetector detector;
  DensityMap quiet(8);
  quiet.at(0, 0) = 1.0f;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(detector.update(quiet).detected);
  DensityMap spot(8);
  for (std::uint32_t y = 0; y < 32; ++y) {
    for (std::uint32_t x = 0; x < 32; ++x) spot.at(x, y) = 1.0f;  // one block of the 8x8 partition
  }
  EXPECT_FALSE(detector.update(spot).detected);
  DensityMap spread(8);
  for (std::uint32_t y = 0; y < 256; y += 4) {
    for (std::uint32_t x = 0; x < 256; x += 16) spread.at(x, y) = 1.0f;  // 1024 cells, all blocks
  }
  const Detection d = detector.update(spread);
  EXPECT_TRUE(d.detected);
  EXPECT_EQ(count(d.mask, kMaskEntered), 1024u - 16u);  // 16 of them were in the spot already
}

TEST(PhaseTransitionDetector, FiresWhenTheHotSetMoves) {
  for (bool sampled : {false, true}) {
    const Fired f = run(Workload::kMovingHotSet, sampled);
    // The set moves at interval 15; with windows of 2 the new window is all-new at 16.
    ASSERT_EQ(f.phase, (std::vector<std::uint64_t>{16})) << "sampled " << sampled;
    EXPECT_TRUE(f.avalanche.empty()) << "a set of the same size moving is not a burst";
    const Detection& d = f.phase_detections[0];
    // Four blocks of 1024 pages = 256 cells each.
    EXPECT_NEAR(static_cast<double>(count(d.mask, kMaskEntered)), 1024, 100);
    EXPECT_NEAR(static_cast<double>(count(d.mask, kMaskLeft)), 1024, 100);
    EXPECT_LT(d.measure, 0.2);
  }
}

// The workloads built not to trigger: each runs once, exact and sampled, for both detectors.
TEST(Detectors, QuietOnSweepsSteadySetsGrowthThreadsAndScatter) {
  for (Workload w : {Workload::kSequentialSweep, Workload::kSteadyHotSet, Workload::kSlowGrowth,
                     Workload::kThreads, Workload::kRandomScattered}) {
    for (bool sampled : {false, true}) {
      const Fired f = run(w, sampled);
      const std::string what = std::string(testing::name(w)) + (sampled ? " sampled" : " exact");
      EXPECT_TRUE(f.avalanche.empty()) << what;
      EXPECT_TRUE(f.phase.empty()) << what;
    }
  }
}

DensityMap block_at(std::uint32_t x0) {
  DensityMap m(6);
  for (std::uint32_t y = 0; y < 16; ++y) {
    for (std::uint32_t x = x0; x < x0 + 16; ++x) m.at(x, y) = 1.0f;
  }
  return m;
}

TEST(PhaseTransitionDetector, CoolsDownBetweenReports) {
  const DensityMap a = block_at(0);
  const DensityMap b = block_at(32);
  for (std::size_t cooldown : {std::size_t{8}, std::size_t{0}}) {
    PhaseTransitionDetector detector(PhaseConfig{.cooldown = cooldown});
    std::vector<int> fired;
    // A x6, B x4, A x4: the switch back is 4 intervals after the first report.
    for (int t = 0; t < 14; ++t) {
      if (detector.update(t < 6 || t >= 10 ? a : b).detected) fired.push_back(t);
    }
    if (cooldown == 8) {
      EXPECT_EQ(fired, (std::vector<int>{7}));
    } else {
      EXPECT_EQ(fired, (std::vector<int>{7, 11}));
    }
  }
}

TEST(PhaseTransitionDetector, IgnoresTinyWorkingSetsAndResetsOnANewGrid) {
  PhaseTransitionDetector detector;
  DensityMap a(6), b(6);
  a.at(0, 0) = 1.0f;  // one cell: below min_cells
  b.at(9, 9) = 1.0f;
  for (int t = 0; t < 12; ++t) EXPECT_FALSE(detector.update(t < 6 ? a : b).detected);
  // A map of another order restarts the history instead of comparing unlike grids.
  EXPECT_FALSE(detector.update(DensityMap(5)).detected);
}

}  // namespace
}  // namespace haywire::glass
