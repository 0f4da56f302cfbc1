#include "haywire/glass/reconstruct.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "glass/testing/synthetic_workload.h"
#include "haywire/glass/accuracy.h"
#include "haywire/glass/hilbert.h"

namespace haywire::glass {
namespace {

using testing::SyntheticWorkload;
using testing::Workload;
using testing::WorkloadSpec;

// Optimality of the fused lasso: with c_i = sum_{j<=i} w_j (beta_j - y_j), need |c_i| <= lambda,
// c_i = +lambda where beta rises after i, -lambda where it falls, and c_{n-1} = 0.
void expect_optimal(const std::vector<double>& y, const std::vector<double>& w, double lambda,
                    const std::vector<double>& beta) {
  const double tol = 1e-7 * (1 + lambda);
  double c = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    c += w[i] * (beta[i] - y[i]);
    if (i + 1 == y.size()) {
      EXPECT_NEAR(c, 0.0, tol);
      break;
    }
    EXPECT_LE(std::fabs(c), lambda + tol) << "at " << i;
    if (beta[i + 1] > beta[i] + 1e-12) {
      EXPECT_NEAR(c, lambda, tol) << "rise at " << i;
    }
    if (beta[i + 1] < beta[i] - 1e-12) {
      EXPECT_NEAR(c, -lambda, tol) << "fall at " << i;
    }
  }
}

TEST(FusedLasso, SatisfiesTheOptimalityConditions) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0, 1);
  for (std::size_t n : {2u, 3u, 5u, 17u, 200u, 1000u}) {
    for (double lambda : {0.05, 0.5, 3.0}) {
      std::vector<double> y(n), w(n), beta(n);
      for (std::size_t i = 0; i < n; ++i) {
        y[i] = (i / 7) % 2 ? 1.0 : 0.0;  // steps plus noise
        y[i] += 0.3 * (unit(rng) - 0.5);
        w[i] = 0.5 + 3 * unit(rng);
      }
      fused_lasso_1d(y, w, lambda, beta);
      expect_optimal(y, w, lambda, beta);
    }
  }
}

TEST(FusedLasso, LimitsAreIdentityAndWeightedMean) {
  const std::vector<double> y = {0, 1, 0, 1, 1};
  const std::vector<double> w = {1, 1, 2, 1, 5};
  std::vector<double> beta(5);
  fused_lasso_1d(y, w, 0.0, beta);
  EXPECT_EQ(beta, y);
  fused_lasso_1d(y, w, 100.0, beta);
  for (double b : beta) EXPECT_NEAR(b, 7.0 / 10.0, 1e-9);
  std::vector<double> one(1);
  fused_lasso_1d(std::vector<double>{0.25}, std::vector<double>{1}, 1.0, one);
  EXPECT_EQ(one[0], 0.25);
}

TEST(Observe, CountsArmedAndWrittenPagesPerCell) {
  const PageGrid grid = PageGrid::fit(1, 16);  // 4 cells x 4 pages
  const std::vector<PageIndexRange> armed = {{0, 2}, {8, 8}};
  const std::vector<PageIndexRange> written = {{1, 4}, {9, 1}, {15, 1}};
  const Observation obs = observe(grid, armed, written);
  EXPECT_EQ(obs.pages, (std::vector<std::uint32_t>{4, 4, 4, 4}));
  EXPECT_EQ(obs.armed, (std::vector<std::uint32_t>{2, 0, 4, 4}));
  EXPECT_EQ(obs.written, (std::vector<std::uint32_t>{1, 0, 1, 1}));  // page 2..4 were not armed
}

TEST(Observe, CountsOnlyLiveSlotsWhenSomeAreReserved) {
  const PageGrid grid = PageGrid::fit(1, 16);  // 4 cells x 4 slots
  const std::vector<PageIndexRange> live = {{0, 3}, {8, 8}};  // slots 3..7 reserved (unmapped)
  const std::vector<PageIndexRange> armed = {{0, 16}};
  const std::vector<PageIndexRange> written = {{2, 3}, {9, 1}};
  const Observation obs = observe(grid, armed, written, live);
  EXPECT_EQ(obs.pages, (std::vector<std::uint32_t>{3, 0, 4, 4}));
  EXPECT_EQ(obs.armed, (std::vector<std::uint32_t>{3, 0, 4, 4}));
  EXPECT_EQ(obs.written, (std::vector<std::uint32_t>{1, 0, 1, 0}));
  const DensityMap map = exact_density(obs);
  const Cell c0 = hilbert_d2xy(1, 0);
  EXPECT_FLOAT_EQ(map.at(c0.x, c0.y), 1.0f / 3.0f);  // not 1/4: the reserved slot is no page
}

TEST(ExactDensity, PlacesEachCellAtItsHilbertPosition) {
  const PageGrid grid = PageGrid::fit(3, 64 * 2);
  const std::vector<PageIndexRange> written = {{2 * 37, 2}, {2 * 5, 1}};
  const DensityMap map = exact_density(observe(grid, full_plan(grid).ranges, written));
  const Cell c37 = hilbert_d2xy(3, 37);
  const Cell c5 = hilbert_d2xy(3, 5);
  EXPECT_FLOAT_EQ(map.at(c37.x, c37.y), 1.0f);
  EXPECT_FLOAT_EQ(map.at(c5.x, c5.y), 0.5f);
  float total = 0;
  for (float v : map.cells) total += v;
  EXPECT_FLOAT_EQ(total, 1.5f);
}

TEST(Reconstructor, FullObservationsAreExactWhateverTheMethod) {
  const WorkloadSpec spec{.kind = Workload::kThreads, .page_count = 1 << 14};
  const PageGrid grid = PageGrid::fit(6, spec.page_count);
  const Observation full = observe(grid, full_plan(grid).ranges, SyntheticWorkload(spec).written(2));
  const DensityMap exact = exact_density(full);
  Reconstructor r(6);
  DensityMap out;
  ASSERT_TRUE(r.reconstruct(full, out).has_value());
  EXPECT_EQ(out.cells, exact.cells);
}

TEST(Reconstructor, RejectsObservationsOfAnotherOrder) {
  Reconstructor r(6);
  DensityMap out;
  Observation obs = observe(PageGrid::fit(5, 1000), full_plan(PageGrid::fit(5, 1000)).ranges, {});
  auto result = r.reconstruct(obs, out);
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().message().find("order 5"), std::string::npos) << result.error().message();
  obs.order = 6;  // right order, wrong sizes
  EXPECT_FALSE(r.reconstruct(obs, out).has_value());
}

struct Score {
  double f1_min = 1;
  double f1_mean = 0;
};

Score score(Workload w, ReconstructionMethod method) {
  const WorkloadSpec spec{.kind = w};
  const SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(8, spec.page_count);
  const Sampler sampler;
  Reconstructor r(8, ReconstructionConfig{.method = method});
  DensityMap out;
  Score s;
  int n = 0;
  for (std::uint64_t t = 0; t < spec.intervals; t += 3) {
    const auto written = workload.written(t);
    const DensityMap truth = exact_density(observe(grid, full_plan(grid).ranges, written));
    EXPECT_TRUE(r.reconstruct(observe(grid, sampler.plan(grid, 0.1, t).ranges, written), out));
    const double f1 = measure_accuracy(out, truth)->f1;
    s.f1_min = std::min(s.f1_min, f1);
    s.f1_mean += f1;
    ++n;
  }
  s.f1_mean /= n;
  return s;
}

// The accuracy target (order 8, 10% sampling, hot-cell F1 >= 0.9) on the workloads with
// locality. (Timing is the benchmark's business.)
TEST(Reconstructor, MeetsTheF1TargetOnWorkloadsWithLocality) {
  for (Workload w : {Workload::kSequentialSweep, Workload::kMovingHotSet, Workload::kThreads,
                     Workload::kSteadyHotSet, Workload::kSlowGrowth}) {
    EXPECT_GE(score(w, ReconstructionMethod::kCurveTv).f1_min, 0.9) << testing::name(w);
  }
}

TEST(Reconstructor, BeatsTheBaselines) {
  for (Workload w : {Workload::kMovingHotSet, Workload::kThreads}) {
    const double tv = score(w, ReconstructionMethod::kCurveTv).f1_mean;
    EXPECT_GT(tv, score(w, ReconstructionMethod::kZeroFill).f1_mean) << testing::name(w);
    EXPECT_GT(tv, score(w, ReconstructionMethod::kNearestOnGrid).f1_mean) << testing::name(w);
  }
}

TEST(Reconstructor, EstimatesTheVolumeOfScatteredWrites) {
  // No locality, so no cell-level accuracy; the total is still right.
  const WorkloadSpec spec{.kind = Workload::kRandomScattered};
  const PageGrid grid = PageGrid::fit(8, spec.page_count);
  const auto written = SyntheticWorkload(spec).written(4);
  std::uint64_t truth = 0;
  for (const PageIndexRange& r : written) truth += r.count;
  Reconstructor r(8);
  DensityMap out;
  const SamplePlan plan = Sampler().plan(grid, 0.1, 4);
  auto stats = r.reconstruct(observe(grid, plan.ranges, written), out);
  ASSERT_TRUE(stats.has_value());
  EXPECT_NEAR(stats->estimated_written_pages, static_cast<double>(truth), 0.15 * static_cast<double>(truth));
  // Every armed page of the plan is an observation (10 % of the line, to a run's rounding).
  EXPECT_EQ(stats->armed_pages, plan.armed_pages);
  EXPECT_NEAR(static_cast<double>(stats->armed_pages), 0.1 * static_cast<double>(grid.page_count), static_cast<double>(plan.run_pages));
}

}  // namespace
}  // namespace haywire::glass
