// Synthetic write patterns on the tracked page line, for the sampling / reconstruction /
// detector tests and benchmarks: which pages each interval writes, exactly and
// deterministically (seeded), with no process and no kernel involved. (The real workload
// program that the tracking tests run lives elsewhere; these are its pure counterparts.)
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "haywire/glass/sampling.h"

namespace haywire::glass::testing {

enum class Workload {
  kSequentialSweep,  // a pointer sweeps a buffer of half the space, wrapping; P/64 pages/interval
  kRandomScattered,  // P/20 uniformly random pages per interval: no locality at all
  kMovingHotSet,     // 4 blocks of P/64 pages, each page rewritten with p = 0.9; all four move
                     // elsewhere at move_interval()
  kBurst,            // a steady block of P/128 pages; at burst_interval() also 64 chunks of
                     // P/1024 pages at random places across the space
  kThreads,          // 4 threads, each sweeping its own area of P/8 pages at its own speed
                     // (P/256 * (i + 1) pages/interval) plus 1% scattered writes in the area
  kSteadyHotSet,     // kMovingHotSet's first hot set, forever
  kSlowGrowth,       // a block growing 3% per interval from P/32 pages, p = 0.9 per page
};

std::string_view name(Workload w);
inline constexpr Workload kAllWorkloads[] = {
    Workload::kSequentialSweep, Workload::kRandomScattered, Workload::kMovingHotSet,
    Workload::kBurst,           Workload::kThreads,         Workload::kSteadyHotSet,
    Workload::kSlowGrowth};

struct WorkloadSpec {
  Workload kind = Workload::kSequentialSweep;
  std::uint64_t page_count = 1 << 18;  // 1 GiB of 4 KiB pages: 4 pages per cell at order 8
  std::uint64_t intervals = 20;
  std::uint64_t seed = 1;
};

class SyntheticWorkload {
 public:
  explicit SyntheticWorkload(WorkloadSpec spec);

  // Pages written in `interval` (sorted, disjoint, merged).
  [[nodiscard]] std::vector<PageIndexRange> written(std::uint64_t interval) const;

  [[nodiscard]] std::uint64_t move_interval() const { return spec_.intervals / 2; }
  [[nodiscard]] std::uint64_t burst_interval() const { return spec_.intervals / 2; }
  [[nodiscard]] const WorkloadSpec& spec() const { return spec_; }

 private:
  WorkloadSpec spec_;
  std::vector<std::uint64_t> hot_before_;  // block starts
  std::vector<std::uint64_t> hot_after_;
};

// Sorts and merges overlapping or adjacent ranges.
std::vector<PageIndexRange> normalize(std::vector<PageIndexRange> ranges);

}  // namespace haywire::glass::testing
