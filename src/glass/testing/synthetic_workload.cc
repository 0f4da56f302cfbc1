#include "glass/testing/synthetic_workload.h"

#include <algorithm>
#include <cmath>

namespace haywire::glass::testing {
namespace {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

std::uint64_t mix(std::uint64_t seed, std::uint64_t interval, std::uint64_t salt) {
  return seed * 0x100000001B3ull ^ (interval + 1) * 0xD1B54A32D192ED03ull ^ salt;
}

// Pages of [first, first + count) each written with probability p.
void write_block(std::vector<PageIndexRange>& out, std::uint64_t first, std::uint64_t count,
                 double p, Rng& rng) {
  if (p >= 1.0) {
    out.push_back({first, count});
    return;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    if (rng.unit() < p) out.push_back({first + i, 1});
  }
}

// A window of `length` pages at `offset` inside [base, base + size), wrapping.
void write_window(std::vector<PageIndexRange>& out, std::uint64_t base, std::uint64_t size,
                  std::uint64_t offset, std::uint64_t length) {
  length = std::min(length, size);
  offset %= size;
  const std::uint64_t first_part = std::min(length, size - offset);
  out.push_back({base + offset, first_part});
  if (first_part < length) out.push_back({base, length - first_part});
}

std::vector<std::uint64_t> hot_blocks(std::uint64_t pages, std::uint64_t block, Rng& rng) {
  // Four blocks, in distinct eighths of the space so they never overlap.
  std::vector<std::uint64_t> eighths = {0, 1, 2, 3, 4, 5, 6, 7};
  for (std::size_t i = eighths.size() - 1; i > 0; --i) std::swap(eighths[i], eighths[rng.below(i + 1)]);
  std::vector<std::uint64_t> starts;
  const std::uint64_t eighth = pages / 8;
  for (std::size_t i = 0; i < 4; ++i) {
    starts.push_back(eighths[i] * eighth + rng.below(eighth > block ? eighth - block : 1));
  }
  std::sort(starts.begin(), starts.end());
  return starts;
}

}  // namespace

std::string_view name(Workload w) {
  switch (w) {
    case Workload::kSequentialSweep: return "sweep";
    case Workload::kRandomScattered: return "scattered";
    case Workload::kMovingHotSet: return "moving_hot_set";
    case Workload::kBurst: return "burst";
    case Workload::kThreads: return "threads";
    case Workload::kSteadyHotSet: return "steady_hot_set";
    case Workload::kSlowGrowth: return "slow_growth";
  }
  return "?";
}

SyntheticWorkload::SyntheticWorkload(WorkloadSpec spec) : spec_(spec) {
  Rng rng(mix(spec.seed, ~std::uint64_t{0}, 0x407));
  const std::uint64_t block = std::max<std::uint64_t>(1, spec.page_count / 64);
  hot_before_ = hot_blocks(spec.page_count, block, rng);
  hot_after_ = hot_blocks(spec.page_count, block, rng);
}

std::vector<PageIndexRange> SyntheticWorkload::written(std::uint64_t t) const {
  const std::uint64_t pages = spec_.page_count;
  std::vector<PageIndexRange> out;
  if (pages == 0) return out;
  Rng rng(mix(spec_.seed, t, static_cast<std::uint64_t>(spec_.kind)));
  const std::uint64_t block = std::max<std::uint64_t>(1, pages / 64);
  switch (spec_.kind) {
    case Workload::kSequentialSweep: {
      const std::uint64_t speed = std::max<std::uint64_t>(1, pages / 64);
      write_window(out, pages / 8, pages / 2, t * speed, speed);
      break;
    }
    case Workload::kRandomScattered:
      for (std::uint64_t i = 0; i < pages / 20; ++i) out.push_back({rng.below(pages), 1});
      break;
    case Workload::kMovingHotSet:
    case Workload::kSteadyHotSet: {
      const bool moved = spec_.kind == Workload::kMovingHotSet && t >= move_interval();
      for (std::uint64_t start : moved ? hot_after_ : hot_before_) {
        write_block(out, start, std::min(block, pages - start), 0.9, rng);
      }
      break;
    }
    case Workload::kBurst: {
      write_block(out, hot_before_[0], std::min(pages / 128 + 1, pages - hot_before_[0]), 1.0, rng);
      if (t == burst_interval()) {
        const std::uint64_t chunk = std::max<std::uint64_t>(1, pages / 1024);
        for (int i = 0; i < 64; ++i) out.push_back({rng.below(pages - chunk + 1), chunk});
      }
      break;
    }
    case Workload::kThreads: {
      const std::uint64_t area = std::max<std::uint64_t>(1, pages / 8);
      for (std::uint64_t i = 0; i < 4; ++i) {
        const std::uint64_t base = i * (pages / 4) + pages / 16;
        const std::uint64_t speed = std::max<std::uint64_t>(1, pages / 256 * (i + 1));
        write_window(out, base, std::min(area, pages - base), t * speed, speed);
        for (std::uint64_t k = 0; k < area / 100; ++k) out.push_back({base + rng.below(area), 1});
      }
      break;
    }
    case Workload::kSlowGrowth: {
      const double grown = static_cast<double>(pages / 32) * std::pow(1.03, static_cast<double>(t));
      const std::uint64_t size = std::min(pages - pages / 4, static_cast<std::uint64_t>(grown));
      write_block(out, pages / 4, size, 0.9, rng);
      break;
    }
  }
  for (PageIndexRange& r : out) r.count = std::min(r.count, pages - std::min(r.first, pages));
  return normalized(std::move(out));
}

}  // namespace haywire::glass::testing
