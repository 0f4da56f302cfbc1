// Reconstruction time and accuracy at order 8, 10% sampling, on the synthetic workloads, for
// the default method and the baselines in the same run. Accuracy is reported as counters
// (f1_mean / f1_min over the workload's non-trivial intervals, err_mean = normalised L1).
//
//   glass_sense_benchmark --benchmark_filter=Reconstruct
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "glass/testing/synthetic_workload.h"
#include "haywire/glass/accuracy.h"
#include "haywire/glass/detectors.h"
#include "haywire/glass/reconstruct.h"
#include "haywire/glass/sampling.h"

namespace haywire::glass {
namespace {

using testing::SyntheticWorkload;
using testing::Workload;
using testing::WorkloadSpec;

constexpr unsigned kOrder = 8;
constexpr double kRate = 0.10;

struct Case {
  std::vector<Observation> sampled;
  std::vector<DensityMap> truth;
  double ranges = 0;
};

// run_pages 0 = the default sampler (runs sized to stay within 4096 ranges per interval).
Case make_case(Workload w, std::uint64_t run_pages) {
  WorkloadSpec spec{.kind = w};
  SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(kOrder, spec.page_count);
  const Sampler sampler(SamplerConfig{.run_pages = run_pages});
  const SamplePlan all = full_plan(grid);
  Case c;
  for (std::uint64_t t = 0; t < spec.intervals; ++t) {
    const auto written = workload.written(t);
    // Burst: only the burst interval is of interest (the others are one steady block).
    if (w == Workload::kBurst && t != workload.burst_interval()) continue;
    const SamplePlan plan = sampler.plan(grid, kRate, t);
    c.ranges = static_cast<double>(plan.ranges.size());
    c.sampled.push_back(observe(grid, plan.ranges, written));
    c.truth.push_back(exact_density(observe(grid, all.ranges, written)));
  }
  return c;
}

void BM_Reconstruct(benchmark::State& state) {
  const auto workload = static_cast<Workload>(state.range(0));
  const auto method = static_cast<ReconstructionMethod>(state.range(1));
  const auto run_pages = static_cast<std::uint64_t>(state.range(2));
  const Case c = make_case(workload, run_pages);
  Reconstructor reconstructor(kOrder, ReconstructionConfig{.method = method});
  DensityMap out;

  double f1_sum = 0, f1_min = 1, err_sum = 0;
  for (std::size_t i = 0; i < c.sampled.size(); ++i) {
    (void)reconstructor.reconstruct(c.sampled[i], out);
    const AccuracyReport r = *measure_accuracy(out, c.truth[i]);
    f1_sum += r.f1;
    f1_min = std::min(f1_min, r.f1);
    err_sum += r.normalized_error;
  }
  std::size_t i = 0;
  for (auto _ : state) {
    auto stats = reconstructor.reconstruct(c.sampled[i], out);
    benchmark::DoNotOptimize(stats);
    benchmark::DoNotOptimize(out.cells.data());
    i = (i + 1) % c.sampled.size();
  }
  const auto n = static_cast<double>(c.sampled.size());
  state.counters["f1_mean"] = f1_sum / n;
  state.counters["f1_min"] = f1_min;
  state.counters["err_mean"] = err_sum / n;
  state.counters["ranges"] = c.ranges;
  static const char* const kMethods[] = {"curve_tv", "zero_fill", "nearest_grid", "nearest_curve"};
  state.SetLabel(std::string(testing::name(workload)) + "/" + kMethods[state.range(1)] +
                 (run_pages == 0 ? "/runs_auto" : "/run_" + std::to_string(run_pages)));
}

void ReconstructArgs(benchmark::internal::Benchmark* b) {
  for (Workload w : {Workload::kSequentialSweep, Workload::kRandomScattered, Workload::kMovingHotSet,
                     Workload::kBurst, Workload::kThreads}) {
    for (int method = 0; method < 4; ++method) {
      for (int run : {0, 1}) b->Args({static_cast<int>(w), method, run});
    }
  }
}
BENCHMARK(BM_Reconstruct)->Apply(ReconstructArgs)->Unit(benchmark::kMicrosecond);

void BM_SamplerPlan(benchmark::State& state) {
  const PageGrid grid = PageGrid::fit(kOrder, std::uint64_t{1} << 18);
  const Sampler sampler(SamplerConfig{.run_pages = static_cast<std::uint64_t>(state.range(0))});
  std::uint64_t t = 0;
  std::size_t ranges = 0;
  for (auto _ : state) {
    SamplePlan plan = sampler.plan(grid, kRate, t++);
    ranges = plan.ranges.size();
    benchmark::DoNotOptimize(plan.ranges.data());
  }
  state.counters["ranges"] = static_cast<double>(ranges);
}
BENCHMARK(BM_SamplerPlan)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_Observe(benchmark::State& state) {
  const WorkloadSpec spec{.kind = Workload::kThreads};
  const SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(kOrder, spec.page_count);
  const SamplePlan plan = Sampler().plan(grid, kRate, 3);
  const auto written = workload.written(3);
  for (auto _ : state) {
    Observation obs = observe(grid, plan.ranges, written);
    benchmark::DoNotOptimize(obs.written.data());
  }
}
BENCHMARK(BM_Observe)->Unit(benchmark::kMicrosecond);

void BM_Detectors(benchmark::State& state) {
  const WorkloadSpec spec{.kind = Workload::kMovingHotSet};
  const SyntheticWorkload workload(spec);
  const PageGrid grid = PageGrid::fit(kOrder, spec.page_count);
  std::vector<DensityMap> maps;
  for (std::uint64_t t = 0; t < spec.intervals; ++t) {
    maps.push_back(exact_density(observe(grid, full_plan(grid).ranges, workload.written(t))));
  }
  AvalancheDetector avalanche;
  PhaseTransitionDetector phase;
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(avalanche.update(maps[i]));
    benchmark::DoNotOptimize(phase.update(maps[i]));
    i = (i + 1) % maps.size();
  }
}
BENCHMARK(BM_Detectors)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace haywire::glass

BENCHMARK_MAIN();
