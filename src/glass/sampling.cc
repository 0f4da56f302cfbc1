#include "haywire/glass/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace haywire::glass {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Slot used in `interval`: the intervals of one cycle visit every slot once, in an order that
// is a seeded permutation (a fixed order would make every page's sampling period identical,
// which aliases with periodic workloads).
std::uint64_t slot_for(std::uint64_t seed, std::uint64_t slots, std::uint64_t interval) {
  if (slots <= 1) return 0;
  std::uint64_t state = seed ^ (interval / slots) * 0xD1B54A32D192ED03ull;
  std::vector<std::uint64_t> order(slots);
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  for (std::uint64_t i = slots - 1; i > 0; --i) {
    std::swap(order[i], order[splitmix64(state) % (i + 1)]);
  }
  return order[interval % slots];
}

}  // namespace

PageGrid PageGrid::fit(unsigned grid_order, std::uint64_t pages) {
  PageGrid grid;
  grid.order = grid_order;
  grid.page_count = pages;
  const std::uint64_t cells = grid.cell_count();
  grid.pages_per_cell = std::max<std::uint64_t>(1, (pages + cells - 1) / cells);
  return grid;
}

std::uint32_t PageGrid::pages_in(std::uint64_t d) const {
  const std::uint64_t first = d * pages_per_cell;
  if (first >= page_count) return 0;
  return static_cast<std::uint32_t>(std::min(pages_per_cell, page_count - first));
}

void SamplingPause::note_sampled(double seen, double estimated, double rearmed_by_full) {
  if (!config_.enabled || paused_) return;
  const double written = std::max(estimated, seen);
  const double saved = written - seen + std::clamp(rearmed_by_full, 0.0, seen);
  // Nothing written saves nothing: an idle process is tracked in full as cheaply as anything.
  streak_ = written < config_.min_pages || saved <= config_.pause_below * written ? streak_ + 1 : 0;
  if (streak_ >= config_.pause_after) {
    paused_ = true;
    streak_ = 0;
  }
}

void SamplingPause::note_full(std::uint64_t written, std::uint64_t spared, double rate) {
  if (!config_.enabled || !paused_) return;
  const double saved = (1.0 - std::clamp(rate, 0.0, 1.0)) * static_cast<double>(std::min(spared, written));
  const auto pages = static_cast<double>(written);
  // saved > resume_above x pages also needs something written: saved is 0 when nothing was.
  streak_ = pages >= config_.min_pages && saved > config_.resume_above * pages ? streak_ + 1 : 0;
  if (streak_ >= config_.resume_after) {
    paused_ = false;
    streak_ = 0;
  }
}

void WriteHistory::reset(std::uint64_t slots) {
  stamps_.assign(slots, 0);
}

void WriteHistory::grow(std::uint64_t slots) {
  if (slots > stamps_.size()) stamps_.resize(slots, 0);
}

WriteHistory::Rewrites WriteHistory::record(std::uint64_t interval, std::span<const PageIndexRange> written,
                                            std::uint64_t horizon, std::uint64_t armed_all) {
  Rewrites rewrites;
  const auto now = static_cast<std::uint32_t>(interval % kModulus) + 1;
  horizon = std::min<std::uint64_t>(horizon, kModulus - 1);
  // A page last written `age` intervals ago was written before `armed_all` when age exceeds this.
  const std::uint64_t since_armed_all = interval >= armed_all ? interval - armed_all : 0;
  const std::uint64_t size = stamps_.size();
  for (const PageIndexRange& r : written) {
    if (r.first >= size) continue;
    const std::uint64_t end = std::min(r.end(), size);
    for (std::uint64_t slot = r.first; slot < end; ++slot) {
      const std::uint32_t last = stamps_[slot];
      stamps_[slot] = static_cast<std::uint16_t>(now);
      if (last == 0) continue;
      const std::uint32_t age = (now + kModulus - last) % kModulus;
      if (age == 0 || age > horizon) continue;
      ++rewrites.recent;
      if (age > since_armed_all) ++rewrites.before;
    }
  }
  return rewrites;
}

SamplePlan full_plan(const PageGrid& grid) {
  SamplePlan plan;
  plan.requested_rate = 1.0;
  if (grid.page_count > 0) plan.ranges.push_back({0, grid.page_count});
  plan.armed_pages = grid.page_count;
  return plan;
}

SamplePlan Sampler::plan(const PageGrid& grid, double rate, std::uint64_t interval) const {
  if (!(rate > 0.0)) rate = kMinSamplingRate;  // also catches NaN
  rate = std::max(rate, 1e-3);
  const std::uint64_t pages = grid.page_count;
  if (rate >= 1.0 || pages == 0) {
    SamplePlan plan = full_plan(grid);
    plan.requested_rate = std::min(rate, 1.0);
    return plan;
  }
  SamplePlan plan;
  plan.requested_rate = rate;
  const double wanted = std::ceil(rate * static_cast<double>(pages));
  std::uint64_t run = config_.run_pages;
  if (run == 0) {
    std::uint64_t ranges = config_.max_ranges;
    if (config_.pages_per_range != 0) ranges = std::min(ranges, pages / config_.pages_per_range);
    const double budget = static_cast<double>(std::max<std::uint64_t>(1, ranges));
    run = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(wanted / budget)));
  }
  // Strata of `stride` pages (not necessarily whole): run starts at floor((i + phase) * stride),
  // so the armed share is run / stride = rate exactly, and gaps differ by at most one page.
  const double stride = static_cast<double>(run) / rate;
  const auto slots = static_cast<std::uint64_t>(std::ceil(1.0 / rate - 1e-9));
  // The small epsilon keeps exact products (rate 0.1: stride 10, offset 3) from flooring to
  // the page before.
  const double offset = static_cast<double>(slot_for(config_.seed, slots, interval)) *
                            (stride / static_cast<double>(slots)) + 1e-7;
  plan.run_pages = run;
  plan.stratum_pages = static_cast<std::uint64_t>(std::llround(stride));
  plan.ranges.reserve(static_cast<std::size_t>(static_cast<double>(pages) / stride) + 2);
  for (std::uint64_t i = 0;; ++i) {
    const auto start = static_cast<std::uint64_t>(static_cast<double>(i) * stride + offset);
    if (start >= pages) break;
    const std::uint64_t end = std::min(pages, start + run);
    if (!plan.ranges.empty() && plan.ranges.back().end() >= start) {
      plan.ranges.back().count = std::max(plan.ranges.back().end(), end) - plan.ranges.back().first;
    } else {
      plan.ranges.push_back({start, end - start});
    }
  }
  if (plan.ranges.empty()) {
    // Fewer pages than one stratum: still arm one run, at the rotating offset.
    const std::uint64_t start = static_cast<std::uint64_t>(offset) % pages;
    plan.ranges.push_back({start, std::min(run, pages - start)});
  }
  for (const PageIndexRange& r : plan.ranges) plan.armed_pages += r.count;
  return plan;
}

std::vector<std::uint32_t> pages_per_cell(const PageGrid& grid, std::span<const PageIndexRange> ranges) {
  std::vector<std::uint32_t> counts(grid.cell_count(), 0);
  const std::uint64_t per = grid.pages_per_cell;
  const std::uint64_t limit = std::min(grid.page_count, grid.cell_count() * per);
  for (const PageIndexRange& r : ranges) {
    const std::uint64_t a = std::min(r.first, limit);
    const std::uint64_t b = std::min(r.end(), limit);
    if (a >= b) continue;
    const std::uint64_t c0 = a / per;
    const std::uint64_t c1 = (b - 1) / per;
    if (c0 == c1) {
      counts[c0] += static_cast<std::uint32_t>(b - a);
      continue;
    }
    counts[c0] += static_cast<std::uint32_t>((c0 + 1) * per - a);
    for (std::uint64_t c = c0 + 1; c < c1; ++c) counts[c] += static_cast<std::uint32_t>(per);
    counts[c1] += static_cast<std::uint32_t>(b - c1 * per);
  }
  return counts;
}

std::vector<PageIndexRange> intersect(std::span<const PageIndexRange> a, std::span<const PageIndexRange> b) {
  std::vector<PageIndexRange> out;
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    const std::uint64_t lo = std::max(a[i].first, b[j].first);
    const std::uint64_t hi = std::min(a[i].end(), b[j].end());
    if (lo < hi) out.push_back({lo, hi - lo});
    if (a[i].end() < b[j].end()) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

namespace {
bool starts_before(const PageIndexRange& a, const PageIndexRange& b) { return a.first < b.first; }
}  // namespace

std::vector<PageIndexRange> normalized(std::vector<PageIndexRange> ranges) {
  // Sorted input (the common case) skips the sort; then coalesce in place.
  if (!std::is_sorted(ranges.begin(), ranges.end(), starts_before))
    std::sort(ranges.begin(), ranges.end(), starts_before);
  std::size_t kept = 0;
  for (const PageIndexRange& r : ranges) {
    if (r.count == 0) continue;
    if (kept > 0 && ranges[kept - 1].end() >= r.first) {
      ranges[kept - 1].count = std::max(ranges[kept - 1].end(), r.end()) - ranges[kept - 1].first;
    } else {
      ranges[kept++] = r;
    }
  }
  ranges.resize(kept);
  return ranges;
}

std::vector<PageIndexRange> union_of(std::span<const PageIndexRange> a, std::span<const PageIndexRange> b) {
  // A linear merge of sorted lists, not a sort of the concatenation (unsorted ones still work).
  std::vector<PageIndexRange> all;
  all.reserve(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(all), starts_before);
  return normalized(std::move(all));
}

}  // namespace haywire::glass
