// Accuracy of sampled mode, measured against full tracking of the same interval, and the rule
// that adapts the sampling rate from it.
//
// Definitions (also docs/glass.md "Accuracy"):
//  - A cell is hot when its density (fraction of its pages written in the interval) is
//    >= hot_threshold (default 0.5: at least half of the cell's pages were written).
//  - precision = |est hot & true hot| / |est hot|, recall = |est hot & true hot| / |true hot|,
//    each 1 when its denominator is 0; F1 = 2PR / (P + R), so F1 is 1 when neither map has a
//    hot cell and 0 when exactly one of them has none.
//  - normalised error = sum |est - true| / max(sum true, 1): the L1 error in units of the
//    total true density (the 1 keeps an idle interval finite).
//
// Calibration: every Nth interval also arms a window of the page line (a quarter by default,
// in evenly spaced blocks that move on at each calibration; the whole line with
// window_share = 1). The controller replays the sampled plan that interval would have used
// against what the window saw (pages outside the plan are ignored), reconstructs, and compares
// with the exact map on the window's cells: a fair measurement of sampled mode on exactly that
// interval's writes. Arming the window costs the target a fault on each window page it writes
// again, so a quarter-window calibration costs about a quarter of a full one.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/glass/density.h"
#include "haywire/glass/reconstruct.h"
#include "haywire/glass/sampling.h"

namespace haywire::glass {

inline constexpr float kDefaultHotThreshold = 0.5f;

struct AccuracyReport {
  double precision = 1.0;
  double recall = 1.0;
  double f1 = 1.0;
  double normalized_error = 0.0;
  std::uint64_t true_hot = 0;
  std::uint64_t estimated_hot = 0;
  std::uint64_t true_positives = 0;
  // True when neither map has a hot cell: F1 says nothing about the reconstruction then.
  [[nodiscard]] bool trivial() const { return true_hot == 0 && estimated_hot == 0; }
};

// InvalidArgument when the maps differ in order or size, or a non-empty `mask` (row-major,
// one byte per cell: nonzero = compare this cell) differs in size. Cells left out by the mask
// count nowhere: not as hot, not in the error.
Result<AccuracyReport> measure_accuracy(const DensityMap& estimate, const DensityMap& truth,
                                        float hot_threshold = kDefaultHotThreshold,
                                        std::span<const std::uint8_t> mask = {});

// The adaptive rate rule. After each non-trivial calibration:
//  - F1 < target_f1: rate *= raise_factor at once (accuracy problems are fixed fast);
//  - F1 >= eager_f1: rate *= lower_factor at once (a reconstruction that good spends the
//    target's faults on nothing: each armed page written costs the target one);
//  - F1 >= comfortable_f1 in lower_after calibrations since the last change or miss (values in
//    the band between do not count and do not reset): rate *= lower_factor;
//  - otherwise (the band [target, comfortable) is the hysteresis): unchanged.
// Always clamped to [min_rate, max_rate]. Trivial calibrations (nothing hot in either map)
// carry no information and change nothing, not even the streak.
struct AdaptiveRateConfig {
  double initial_rate = kDefaultSamplingRate;
  double min_rate = kMinSamplingRate;
  double max_rate = kMaxSamplingRate;
  double target_f1 = 0.9;
  double comfortable_f1 = 0.97;
  double eager_f1 = 0.99;
  double raise_factor = 1.5;
  double lower_factor = 0.8;
  unsigned lower_after = 2;
  bool adaptive = true;
};

class AdaptiveRate {
 public:
  explicit AdaptiveRate(AdaptiveRateConfig config = {});
  // Feeds one calibration result; returns the (possibly new) rate.
  double update(const AccuracyReport& report);
  [[nodiscard]] double rate() const { return rate_; }
  [[nodiscard]] const AdaptiveRateConfig& config() const { return config_; }

 private:
  AdaptiveRateConfig config_;
  double rate_;
  unsigned comfortable_streak_ = 0;
};

// The plan's range budget (SamplerConfig::max_ranges), adapted from the same calibrations.
// Each range costs the target one PAGEMAP_SCAN per interval, and a TLB shootdown when it was
// written (docs/PERFORMANCE.md section 7), so the controller keeps the fewest ranges that
// still reconstruct well. After each non-trivial calibration:
//  - F1 < target_f1 at the current budget: the budget doubles (up to max_ranges);
//  - F1 >= comfortable_f1: the interval is replayed at half the budget, at three phases of
//    the plan; if all three are comfortable too, the budget halves (down to min_ranges).
//    One step per calibration: the budget comes down gradually.
// target_f1 and comfortable_f1 are the rate rule's (AdaptiveRateConfig).
struct RangeBudgetConfig {
  // Off by default: it trades accuracy margin for cost (it settles where F1 is just
  // comfortable), and a workload that then slows or spreads dips below the target until the
  // next calibrations double the budget back (`haywire glass --adaptive-ranges`).
  bool adaptive = false;
  std::uint64_t min_ranges = 64;
  std::uint64_t max_ranges = 4096;
};

// The cost cap on a plan's ranges. Arming a plan re-protects each range that holds pages
// written since they were last armed, and each such call ends in a TLB flush of the target's
// CPUs (10-15 µs of its time here, in a VM) whatever the range's length. The share of ranges that need it
// is measured at every arming (a moving average); the plan then gets at most
// max(min_ranges, max_rearms / share) ranges. A process that writes everywhere gets fewer,
// longer runs (its density is broad, so coarser samples reconstruct it); one that writes in a
// few places keeps the full budget, since few of its ranges need re-arming.
struct RearmCostConfig {
  // Per interval; 0: no cap. 32 shootdowns are ~0.4 % of the target's 100 ms (64 until
  // session 11: on `sort` the plan's re-protects were then most of its ~1,000 shootdowns/s).
  std::uint64_t max_rearms = 32;
  std::uint64_t min_ranges = 64;
};

struct CalibrationConfig {
  // Every `every`-th interval (interval % every == every - 1) is a calibration interval;
  // 0 never calibrates, 1 always does. With every >= 2 interval 0 is sampled, so the first
  // picture costs no full scan.
  std::uint64_t every = 10;
  // Back off while calibrations meet the target (F1 >= rate.target_f1, or nothing hot): the
  // gap to the next one doubles, up to max_every intervals, and drops back to `every` after a
  // miss. A full interval arms every page, so the whole working set faults once when next
  // written, which is most of sampled mode's cost on a busy process. 0 (or <= every): every
  // `every`-th interval, always.
  std::uint64_t max_every = 0;
  // A sampled plan is held for this many intervals (the same pages armed each time; the
  // next plan is the sampler's next phase). A page outside the plan stays unarmed after its
  // first write until a later plan covers it, so a process that rewrites its pages every few
  // seconds faults on its plan's pages only, not on every page once per rotation. Within the
  // hold the plan changes only when the rate, the grid or the range budget does; the cost cap
  // applies from the next plan. 1: a new phase (and the current cap) every interval.
  // A new plan's first arming re-protects most of its ranges, one TLB shootdown each (~1,000
  // on a process that rewrites its memory every few seconds, ~10 ms of its time), so plans
  // are held long: at 20 intervals those re-plans were half the target's shootdowns.
  std::uint64_t hold_intervals = 50;
  // The share of the page line a calibration arms and measures, besides the sampled plan:
  // `window_blocks` evenly spaced blocks of whole cells, moved on by one block length per
  // calibration so that ceil(1 / window_share) calibrations cover every cell once. Each page
  // the window arms costs the target a fault when next written (a full calibration made
  // `sort` fault ~270,000 extra times in 18 s), and a quarter of the cells is still thousands
  // of cells to measure F1 on. >= 1: full calibrations (every page armed, the exact map).
  double window_share = 0.25;
  std::uint64_t window_blocks = 16;
  float hot_threshold = kDefaultHotThreshold;
  AdaptiveRateConfig rate;
  SamplerConfig sampler;  // sampler.max_ranges is the initial budget
  RangeBudgetConfig ranges;
  RearmCostConfig rearm;
  ReconstructionConfig reconstruction;
};

struct CalibrationResult {
  AccuracyReport accuracy;
  double rate_before = 0.0;
  double rate_after = 0.0;
  std::uint64_t ranges_before = 0;  // range budget
  std::uint64_t ranges_after = 0;
  // The exact map of the measured cells: every cell after a full calibration (what to
  // display then); after a window, the window's cells (0 elsewhere).
  DensityMap full;
  DensityMap reconstructed; // what sampled mode would have shown
  bool whole = true;        // a full calibration (every page armed), not a window
};

// Decides each interval's plan (sampled; on calibration intervals with the calibration window
// added, or full) and turns calibration intervals into accuracy figures and rate changes. One
// per tracked process; not thread-safe.
class CalibrationController {
 public:
  CalibrationController(PageGrid grid, CalibrationConfig config = {});

  // Whether `interval` calibrates. With a backing-off schedule a calibration that did not
  // happen (calibrate() not called for it) stays due: every later interval calibrates until
  // one does.
  [[nodiscard]] bool is_calibration(std::uint64_t interval) const;
  // Whether calibrations arm every page (window_share >= 1) rather than a window.
  [[nodiscard]] bool whole_calibrations() const { return config_.window_share >= 1.0; }
  // Whether interval + 1 will be full (a whole calibration), asked while `interval` ends and
  // before calibrate() is called for it (when it is a calibration): what the scan closing
  // `interval` needs to know.
  [[nodiscard]] bool full_follows(std::uint64_t interval) const;
  // Intervals between the last calibration and the next (the configured `every` until one
  // happened, or with a fixed schedule).
  [[nodiscard]] std::uint64_t calibration_gap() const { return backs_off() ? gap_ : config_.every; }
  // Intervals for which a page that sampled mode leaves unarmed after its write (outside the
  // plan) usually stays unarmed: until the calibration windows come round to it (ceil(1 /
  // window_share) calibrations, at the gap calibrations back off to, max_every, since accurate
  // sampling settles there), or without calibrations until plans have moved on
  // (hold_intervals). A rewrite within it is a fault sampling spares (SamplingPause).
  [[nodiscard]] std::uint64_t unarmed_horizon() const;
  // The plan to arm for `interval`: sampled at rate(); on calibration intervals the window
  // added (or every page, for whole calibrations).
  [[nodiscard]] SamplePlan plan(std::uint64_t interval) const;
  // The window the next calibration arms and measures (sorted, disjoint; every page when
  // calibrations are whole). Moves on after each calibrate().
  [[nodiscard]] std::vector<PageIndexRange> calibration_window() const;
  // The sampled plan `interval` would use at the current rate (also on calibration intervals).
  [[nodiscard]] SamplePlan sampled_plan(std::uint64_t interval) const;

  // After a calibration interval armed plan(interval): `written` = the pages reported written
  // (sorted, disjoint; exact within calibration_window()). Reconstructs from
  // sampled_plan(interval), compares on the window's cells, adapts the rate.
  // `still_armed` (sorted, disjoint): the slots that were armed when the interval began, had it
  // been sampled, besides the plan (Tracker::known_armed: pages armed by earlier plans and not
  // written since); a sampled interval watches them too, so the replay observes them as well.
  Result<CalibrationResult> calibrate(std::uint64_t interval, std::span<const PageIndexRange> written,
                                      std::span<const PageIndexRange> still_armed = {});
  // The same with the window that was armed (calibration_window() when the interval was
  // armed: the grid may have changed since, the slots have not).
  Result<CalibrationResult> calibrate(std::uint64_t interval, std::span<const PageIndexRange> written,
                                      std::span<const PageIndexRange> still_armed,
                                      std::span<const PageIndexRange> window);

  // The grid changed (regions came or went): keep the rate and last accuracy, re-plan.
  void set_grid(PageGrid grid);
  // The slots that hold tracked pages (sorted, disjoint), when some slots of the grid are
  // reserved for unmapped memory; calibrate() then counts live slots only (see observe()).
  // Empty (the default) = every slot of the grid is live.
  void set_live(std::vector<PageIndexRange> live) { live_ = std::move(live); }

  // After a sampled plan of `ranges` ranges was armed, `rearmed` of them needing a
  // re-protect: updates the measured share and with it the cost cap (RearmCostConfig).
  void note_arming(std::uint64_t ranges, std::uint64_t rearmed);
  // The cap on the plan's ranges from the re-arm cost (UINT64_MAX when none applies).
  [[nodiscard]] std::uint64_t cost_cap() const;
  [[nodiscard]] double rearm_share() const { return rearm_share_; }

  [[nodiscard]] double rate() const { return rate_.rate(); }
  [[nodiscard]] std::uint64_t range_budget() const { return sampler_.config().max_ranges; }
  [[nodiscard]] const std::optional<AccuracyReport>& last() const { return last_; }
  [[nodiscard]] const PageGrid& grid() const { return grid_; }
  [[nodiscard]] Reconstructor& reconstructor() { return reconstructor_; }

 private:
  PageGrid grid_;
  CalibrationConfig config_;
  Sampler sampler_;
  AdaptiveRate rate_;
  Reconstructor reconstructor_;
  std::optional<AccuracyReport> last_;
  std::vector<PageIndexRange> live_;
  double rearm_share_ = 0.0;  // moving average of rearmed / ranges per arming
  struct HeldPlan {
    std::uint64_t epoch = 0;  // interval / hold_intervals
    double rate = 0.0;
    PageGrid grid;
    std::uint64_t max_ranges = 0;
    SamplePlan plan;
    bool noted = false;  // note_arming() has seen its first arming
  };
  mutable std::optional<HeldPlan> held_;  // sampled_plan()'s cache: the plan of this hold
  std::uint64_t calibrations_ = 0;  // calibrate() calls: where the window is
  std::uint64_t gap_ = 0;   // backing off: intervals from the last calibration to the next
  std::uint64_t next_ = 0;  // backing off: the next calibration interval

  [[nodiscard]] bool backs_off() const { return config_.every > 0 && config_.max_every > config_.every; }

  // Row-major mask of the cells whose every page the window armed (`truth`: the window's
  // observation); empty when that is every cell (a whole calibration).
  [[nodiscard]] std::vector<std::uint8_t> window_mask(const Observation& truth) const;
  Result<AccuracyReport> replay(const SamplePlan& plan, std::span<const PageIndexRange> written,
                                std::span<const PageIndexRange> still_armed, const DensityMap& full,
                                std::span<const std::uint8_t> mask, DensityMap& reconstructed);
  Result<void> adapt_budget(std::uint64_t interval, std::span<const PageIndexRange> written,
                            std::span<const PageIndexRange> still_armed, const DensityMap& full,
                            std::span<const std::uint8_t> mask, const AccuracyReport& current);
};

}  // namespace haywire::glass
