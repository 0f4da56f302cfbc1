// Sampled tracking: which pages to arm (write-protect) each interval.
//
// The tracked pages are numbered 0..page_count-1 in address order (holes collapsed) and laid
// along the Hilbert curve, `pages_per_cell` consecutive pages per cell, so cell d (Hilbert
// index) holds pages [d * pages_per_cell, (d + 1) * pages_per_cell). Arming costs one ioctl per
// contiguous range, so a plan is a short list of page ranges, not a page list.
//
// Plan shape (see docs/glass.md "Sampling"): the page line is cut into strata of S pages and
// each stratum arms one run of `run` consecutive pages (run / S ~= rate). The runs sit on a
// regular lattice (every stratum uses the same phase): equal gaps minimise the longest stretch
// without samples, which is what bounds reconstruction error. The phase changes every interval
// following a seeded permutation of the ceil(S / run) slots, so a different subset is armed
// each time and every page is armed once per cycle of ceil(S / run) intervals.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace haywire::glass {

inline constexpr double kDefaultSamplingRate = 0.10;
inline constexpr double kMinSamplingRate = 0.05;
inline constexpr double kMaxSamplingRate = 0.5;

// Pages [first, first + count), as page indices on the tracked page line.
struct PageIndexRange {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  [[nodiscard]] std::uint64_t end() const { return first + count; }
  friend bool operator==(const PageIndexRange&, const PageIndexRange&) = default;
};

// How the page line sits on the grid of cells at `order`.
struct PageGrid {
  unsigned order = 8;
  std::uint64_t page_count = 0;
  std::uint64_t pages_per_cell = 1;  // >= 1

  // The smallest pages_per_cell that fits page_count pages in 4^order cells.
  static PageGrid fit(unsigned order, std::uint64_t page_count);

  [[nodiscard]] std::uint64_t cell_count() const { return std::uint64_t{1} << (2 * order); }
  [[nodiscard]] std::uint64_t cell_of(std::uint64_t page) const { return page / pages_per_cell; }
  // Pages held by cell d (0 for cells past the end of the page line).
  [[nodiscard]] std::uint32_t pages_in(std::uint64_t d) const;
  friend bool operator==(const PageGrid&, const PageGrid&) = default;
};

struct SamplerConfig {
  std::uint64_t seed = 0x6861797769726531ull;
  // Upper bound on ranges per plan (ioctls per interval); runs lengthen to respect it.
  std::uint64_t max_ranges = 2048;
  // And at most one range per this many tracked pages. Arming a range the target wrote in
  // costs a TLB flush on every CPU running the target whatever the range's length (~10 µs of
  // the target's time here, in a VM), so a small, busy process affords fewer ranges than
  // max_ranges. Longer runs cost accuracy on scattered writes: at 128 (runs of 13 pages at
  // 10 %) a burst of random writes over 64 MiB reconstructs as a thin even haze that the
  // avalanche detector no longer sees; 32 keeps it. 0: no such bound.
  std::uint64_t pages_per_range = 32;
  // Run length in pages; 0 chooses the shortest run (1 page, best spatial coverage) that keeps
  // the plan within max_ranges.
  std::uint64_t run_pages = 0;
};

struct SamplePlan {
  double requested_rate = 0.0;
  std::vector<PageIndexRange> ranges;  // sorted, disjoint, not adjacent
  std::uint64_t armed_pages = 0;
  std::uint64_t run_pages = 0;      // pages per run (0 for a full plan)
  std::uint64_t stratum_pages = 0;  // pages per stratum (0 for a full plan)
  [[nodiscard]] bool full(std::uint64_t page_count) const { return armed_pages == page_count; }
};

class Sampler {
 public:
  explicit Sampler(SamplerConfig config = {}) : config_(config) {}

  // The pages to arm in interval `interval` at `rate` (clamped to (0, 1]; >= 1 arms all).
  // Deterministic in (config.seed, grid, rate, interval).
  [[nodiscard]] SamplePlan plan(const PageGrid& grid, double rate, std::uint64_t interval) const;

  [[nodiscard]] const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
};

// Whether sampling pays for itself on the target as it runs now (docs/glass.md "Sampling
// pauses"). Sampling saves the target the faults of the pages it writes outside the plan. By
// default a page stays armed until written, so what sampling saves is the rewrites of pages no
// plan re-armed; with MonitorOptions::disarm_after_full (--fewer-faults) only the plan stays
// armed after an interval that armed everything, so a page outside it faults at most once
// until a later plan covers it.
// An idle process saves nothing either way, and one whose writes all land in the plan saves
// little, while the monitor pays for plans and reconstruction on top of full tracking's walk.
// So sampled mode pauses (tracks in full) while sampling saves little, and resumes when it
// would save again:
//  - sampled intervals: saved = estimated written pages - written pages seen (each seen one
//    was armed, so faulted), plus the seen pages that only an interval arming everything had
//    armed since their last write, when that write was recent (`rearmed_by_full`: after the
//    start or a pause everything is armed, and a process that rewrites its pages every few
//    seconds faults on each of them once more before sampling's saving shows); pause after
//    `pause_after` of them in a row whose saved pages are below `pause_below` of the estimate;
//  - full intervals: sampling would save (1 - rate) x the pages it would not have kept armed
//    (`spared`: every written page, or without disarming those written before within the
//    horizon in which sampled mode would have left them unarmed, WriteHistory); resume after
//    `resume_after` in a row above `resume_above`.
// Only intervals that follow one of the same kind are fed (the first sampled interval after a
// full one sees everything armed; the first full one after a sampled one has no full
// predecessor to compare with).
struct SamplingPauseConfig {
  bool enabled = true;
  unsigned pause_after = 5;
  double pause_below = 0.10;
  unsigned resume_after = 3;
  double resume_above = 0.20;
  // An interval with fewer written pages than this saves nothing that matters either way
  // (64 faults are ~56 µs of the target's 100 ms): it counts towards pausing, never towards
  // resuming. Without it one page rewritten every interval (an idle loop's counter) would
  // resume sampling for its 0.9 spared faults.
  double min_pages = 64;
};

class SamplingPause {
 public:
  explicit SamplingPause(SamplingPauseConfig config = {}) : config_(config) {}

  // A sampled interval after a sampled one: `seen` written pages among the watched ones,
  // `estimated` written pages in all (the reconstruction's estimate); `rearmed_by_full` of the
  // seen ones were armed only by an interval that armed everything since their recent last
  // write (WriteHistory::Rewrites::before): sampling's steady state would have spared them.
  void note_sampled(double seen, double estimated, double rearmed_by_full = 0.0);
  // A full interval after a full one: `written` pages, `spared` of them sampling would not
  // have kept armed (see above); `rate` is the sampling rate a plan would use.
  void note_full(std::uint64_t written, std::uint64_t spared, double rate);
  [[nodiscard]] bool paused() const { return paused_; }
  [[nodiscard]] const SamplingPauseConfig& config() const { return config_; }

 private:
  SamplingPauseConfig config_;
  bool paused_ = false;
  unsigned streak_ = 0;  // intervals in a row that argue for switching
};

// When each slot of the page line was last seen written, to tell a process that rewrites its
// pages within a horizon (sampling spares those rewrites) from one that writes each page once
// (every write faults whatever is armed). Sampled mode only sees the armed pages written, so
// its history is partial; a paused (full) interval sees every write.
// Two bytes per slot (512 KiB per GiB of tracked address space, reserved slots included):
// intervals are kept modulo 65,535, so a page last written 65,535 intervals ago (1.8 h at
// 10 Hz) passes for a recent one. For a heuristic that is harmless.
class WriteHistory {
 public:
  struct Rewrites {
    std::uint64_t recent = 0;  // written pages last written within `horizon` intervals before
    std::uint64_t before = 0;  // of those, pages last written before interval `armed_all`
  };
  // Forgets every slot and holds `slots` (a new layout: the slots moved).
  void reset(std::uint64_t slots);
  // Holds at least `slots` (the line grew); new slots were never written.
  void grow(std::uint64_t slots);
  // Counts the rewrites among `written` (sorted, disjoint slots; those past the size are
  // ignored) in `interval`, then records them as written then. `armed_all`: the last interval
  // that armed every page (its writes left their pages unarmed; pages written earlier were
  // armed by it).
  Rewrites record(std::uint64_t interval, std::span<const PageIndexRange> written, std::uint64_t horizon,
                  std::uint64_t armed_all);
  [[nodiscard]] std::uint64_t size() const { return stamps_.size(); }

 private:
  static constexpr std::uint32_t kModulus = 65535;
  std::vector<std::uint16_t> stamps_;  // 0 = never written, else interval % kModulus + 1
};

// Every page armed: the plan of a full (or calibration) interval.
SamplePlan full_plan(const PageGrid& grid);

// Pages of `ranges` per cell, indexed by Hilbert index d (size grid.cell_count()). Ranges
// must be sorted and disjoint; parts past page_count are ignored.
std::vector<std::uint32_t> pages_per_cell(const PageGrid& grid, std::span<const PageIndexRange> ranges);

// Sorted, disjoint ranges covering the pages in both inputs (each sorted and disjoint).
std::vector<PageIndexRange> intersect(std::span<const PageIndexRange> a, std::span<const PageIndexRange> b);
// `ranges` in any order, overlapping or not -> sorted, disjoint, adjacent runs merged, empty
// ones dropped.
std::vector<PageIndexRange> normalized(std::vector<PageIndexRange> ranges);
// Union of two lists, normalized (linear when both are sorted, as normalized lists are).
std::vector<PageIndexRange> union_of(std::span<const PageIndexRange> a, std::span<const PageIndexRange> b);

}  // namespace haywire::glass
