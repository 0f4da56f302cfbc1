#include "haywire/glass/accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "haywire/glass/hilbert.h"

namespace haywire::glass {

Result<AccuracyReport> measure_accuracy(const DensityMap& estimate, const DensityMap& truth,
                                        float hot_threshold, std::span<const std::uint8_t> mask) {
  if (estimate.order != truth.order || estimate.cells.size() != truth.cells.size()) {
    return fail(InvalidArgument{fmt::format(
        "cannot compare density maps of order {} ({} cells) and order {} ({} cells)",
        estimate.order, estimate.cells.size(), truth.order, truth.cells.size())});
  }
  if (!mask.empty() && mask.size() != truth.cells.size()) {
    return fail(InvalidArgument{fmt::format("a mask of {} cells for density maps of {} cells", mask.size(),
                                            truth.cells.size())});
  }
  AccuracyReport report;
  double error = 0.0;
  double total = 0.0;
  for (std::size_t i = 0; i < truth.cells.size(); ++i) {
    if (!mask.empty() && mask[i] == 0) continue;
    const float e = estimate.cells[i];
    const float t = truth.cells[i];
    const bool est_hot = e >= hot_threshold;
    const bool true_hot = t >= hot_threshold;
    report.estimated_hot += est_hot;
    report.true_hot += true_hot;
    report.true_positives += est_hot && true_hot;
    error += std::fabs(static_cast<double>(e) - static_cast<double>(t));
    total += t;
  }
  const auto tp = static_cast<double>(report.true_positives);
  report.precision = report.estimated_hot == 0 ? 1.0 : tp / static_cast<double>(report.estimated_hot);
  report.recall = report.true_hot == 0 ? 1.0 : tp / static_cast<double>(report.true_hot);
  if (report.trivial()) {
    report.f1 = 1.0;
  } else if (report.true_positives == 0) {
    report.f1 = 0.0;
  } else {
    report.f1 = 2.0 * report.precision * report.recall / (report.precision + report.recall);
  }
  report.normalized_error = error / std::max(total, 1.0);
  return report;
}

AdaptiveRate::AdaptiveRate(AdaptiveRateConfig config)
    : config_(config), rate_(std::clamp(config.initial_rate, config.min_rate, config.max_rate)) {}

double AdaptiveRate::update(const AccuracyReport& report) {
  if (!config_.adaptive || report.trivial()) return rate_;
  if (report.f1 < config_.target_f1) {
    comfortable_streak_ = 0;
    rate_ = std::min(config_.max_rate, rate_ * config_.raise_factor);
  } else if (report.f1 >= config_.comfortable_f1) {
    if (++comfortable_streak_ >= config_.lower_after || report.f1 >= config_.eager_f1) {
      comfortable_streak_ = 0;
      rate_ = std::max(config_.min_rate, rate_ * config_.lower_factor);
    }
  }
  // In the band [target, comfortable): hold the rate and the count. A workload whose F1 wavers
  // around the comfortable mark (sort: 0.94-1.0) would otherwise never come down from a rate
  // one early miss raised, and every page armed costs the target a fault.
  return rate_;
}

CalibrationController::CalibrationController(PageGrid grid, CalibrationConfig config)
    : grid_(grid),
      config_(config),
      sampler_(config.sampler),
      rate_(config.rate),
      reconstructor_(grid.order, config.reconstruction),
      gap_(config.every),
      next_(config.every > 0 ? config.every - 1 : 0) {}

bool CalibrationController::is_calibration(std::uint64_t interval) const {
  if (backs_off()) return interval >= next_;
  return config_.every > 0 && interval % config_.every == config_.every - 1;
}

bool CalibrationController::full_follows(std::uint64_t interval) const {
  if (!whole_calibrations()) return false;
  if (!backs_off() || !is_calibration(interval)) return is_calibration(interval + 1);
  // `interval` is about to be calibrated: the next one is due at least `every` later (after a
  // miss), so only every == 1 can make interval + 1 full.
  return config_.every == 1;
}

std::uint64_t CalibrationController::unarmed_horizon() const {
  if (config_.every == 0) return std::max<std::uint64_t>(1, config_.hold_intervals);
  const double share = std::clamp(config_.window_share, 1e-3, 1.0);
  const auto windows = static_cast<std::uint64_t>(std::ceil(1.0 / share));
  return std::max<std::uint64_t>(1, (backs_off() ? config_.max_every : config_.every) * windows);
}

void CalibrationController::note_arming(std::uint64_t ranges, std::uint64_t rearmed) {
  // A held plan's first arming re-protects every range over memory written since its pages
  // were last armed: a one-off, not what the plan costs per interval while it is held.
  if (config_.hold_intervals > 1 && held_ && !held_->noted) {
    held_->noted = true;
    return;
  }
  if (ranges == 0) return;
  const double share = static_cast<double>(std::min(rearmed, ranges)) / static_cast<double>(ranges);
  rearm_share_ = 0.5 * rearm_share_ + 0.5 * share;
}

std::uint64_t CalibrationController::cost_cap() const {
  const RearmCostConfig& cfg = config_.rearm;
  if (cfg.max_rearms == 0 || rearm_share_ <= 0.0) return std::numeric_limits<std::uint64_t>::max();
  const double cap = static_cast<double>(cfg.max_rearms) / rearm_share_;
  if (cap >= 1e18) return std::numeric_limits<std::uint64_t>::max();
  return std::max(cfg.min_ranges, static_cast<std::uint64_t>(cap));
}

SamplePlan CalibrationController::sampled_plan(std::uint64_t interval) const {
  const std::uint64_t budget = sampler_.config().max_ranges;
  const std::uint64_t epoch = interval / std::max<std::uint64_t>(1, config_.hold_intervals);
  // The cost cap is read when a plan is made, not during its hold: a new plan's first arming
  // re-protects many of its ranges and a held plan's later ones few, so a cap followed within
  // the hold would swing between the two and re-plan (shifting the lattice) every few
  // intervals.
  if (held_ && held_->epoch == epoch && held_->rate == rate_.rate() && held_->grid == grid_ &&
      held_->max_ranges == budget) {
    return held_->plan;
  }
  SamplerConfig capped = sampler_.config();
  capped.max_ranges = std::min(cost_cap(), budget);
  SamplePlan plan = Sampler(capped).plan(grid_, rate_.rate(), epoch);
  held_ = HeldPlan{epoch, rate_.rate(), grid_, budget, plan};
  return plan;
}

SamplePlan CalibrationController::plan(std::uint64_t interval) const {
  if (!is_calibration(interval)) return sampled_plan(interval);
  if (whole_calibrations()) return full_plan(grid_);
  SamplePlan plan = sampled_plan(interval);
  plan.ranges = union_of(plan.ranges, calibration_window());
  plan.armed_pages = 0;
  for (const PageIndexRange& r : plan.ranges) plan.armed_pages += r.count;
  return plan;
}

std::vector<PageIndexRange> CalibrationController::calibration_window() const {
  if (whole_calibrations() || grid_.page_count == 0) return full_plan(grid_).ranges;
  // Blocks of whole cells over the cells that hold pages, one per stretch of `stride` cells,
  // all at the same offset in their stretch; the offset moves on by a block per calibration.
  const std::uint64_t ppc = std::max<std::uint64_t>(1, grid_.pages_per_cell);
  const std::uint64_t cells = (grid_.page_count + ppc - 1) / ppc;
  const double share = std::max(config_.window_share, 1e-6);
  const std::uint64_t blocks = std::clamp<std::uint64_t>(config_.window_blocks, 1, cells);
  const double stride = static_cast<double>(cells) / static_cast<double>(blocks);
  const auto length = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(share * stride)));
  const auto positions = static_cast<std::uint64_t>(std::ceil(stride / static_cast<double>(length)));
  const std::uint64_t offset = (calibrations_ % std::max<std::uint64_t>(1, positions)) * length;
  std::vector<PageIndexRange> window;
  window.reserve(blocks);
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const auto begin = static_cast<std::uint64_t>(std::floor(static_cast<double>(b) * stride));
    const std::uint64_t end = b + 1 == blocks ? cells : static_cast<std::uint64_t>(std::floor(static_cast<double>(b + 1) * stride));
    const std::uint64_t first = begin + offset;
    if (first >= end) continue;
    const std::uint64_t last = std::min(first + length, end);  // cells [first, last)
    const std::uint64_t first_page = first * ppc;
    const std::uint64_t end_page = std::min(last * ppc, grid_.page_count);
    window.push_back(PageIndexRange{first_page, end_page - first_page});
  }
  return normalized(std::move(window));
}

std::vector<std::uint8_t> CalibrationController::window_mask(const Observation& truth) const {
  // A cell is measured when the window armed every (live) page of it; none but whole cells
  // are, by construction, except a caller's own window.
  const auto measured = [&](std::size_t d) { return truth.pages[d] > 0 && truth.armed[d] == truth.pages[d]; };
  bool whole = true;
  for (std::size_t d = 0; d < truth.pages.size() && whole; ++d) whole = truth.pages[d] == 0 || measured(d);
  if (whole) return {};
  std::vector<std::uint8_t> mask(truth.pages.size(), 0);
  const std::span<const std::uint32_t> grid_index = hilbert_row_major_table(truth.order);
  for (std::size_t d = 0; d < truth.pages.size(); ++d) mask[grid_index[d]] = measured(d) ? 1 : 0;
  return mask;
}

Result<AccuracyReport> CalibrationController::replay(const SamplePlan& plan, std::span<const PageIndexRange> written,
                                                     std::span<const PageIndexRange> still_armed,
                                                     const DensityMap& full, std::span<const std::uint8_t> mask,
                                                     DensityMap& reconstructed) {
  const std::vector<PageIndexRange> armed = union_of(plan.ranges, still_armed);
  auto stats = reconstructor_.reconstruct(
      live_.empty() ? observe(grid_, armed, written) : observe(grid_, armed, written, live_), reconstructed);
  if (!stats) return std::unexpected(stats.error());
  return measure_accuracy(reconstructed, full, config_.hot_threshold, mask);
}

Result<void> CalibrationController::adapt_budget(std::uint64_t interval, std::span<const PageIndexRange> written,
                                                 std::span<const PageIndexRange> still_armed,
                                                 const DensityMap& full, std::span<const std::uint8_t> mask,
                                                 const AccuracyReport& current) {
  const RangeBudgetConfig& cfg = config_.ranges;
  if (!cfg.adaptive || current.trivial()) return {};
  SamplerConfig sc = sampler_.config();
  if (current.f1 < config_.rate.target_f1) {
    sc.max_ranges = std::min(cfg.max_ranges, sc.max_ranges * 2);
    sampler_ = Sampler(sc);
    return {};
  }
  // Halve when both this budget and half of it are comfortable. One plan's luck on one
  // interval is not enough: half the budget must be comfortable at several phases of the plan
  // (the subsets the next intervals will arm). One step per calibration, so the budget comes
  // down gradually and a workload that changes meanwhile is seen at each step.
  if (current.f1 < config_.rate.comfortable_f1 || sc.max_ranges / 2 < std::max<std::uint64_t>(1, cfg.min_ranges))
    return {};
  constexpr std::uint64_t kPhases = 3;
  SamplerConfig trial = sc;
  trial.max_ranges = sc.max_ranges / 2;
  DensityMap scratch;
  for (std::uint64_t phase = 0; phase < kPhases; ++phase) {
    const SamplePlan plan = Sampler(trial).plan(grid_, rate_.rate(), interval + phase);
    auto accuracy = replay(plan, written, still_armed, full, mask, scratch);
    if (!accuracy) return std::unexpected(accuracy.error());
    if (accuracy->f1 < config_.rate.comfortable_f1) return {};
  }
  sampler_ = Sampler(trial);
  return {};
}

Result<CalibrationResult> CalibrationController::calibrate(std::uint64_t interval,
                                                           std::span<const PageIndexRange> written,
                                                           std::span<const PageIndexRange> still_armed) {
  return calibrate(interval, written, still_armed, calibration_window());
}

Result<CalibrationResult> CalibrationController::calibrate(std::uint64_t interval,
                                                           std::span<const PageIndexRange> written,
                                                           std::span<const PageIndexRange> still_armed,
                                                           std::span<const PageIndexRange> window) {
  CalibrationResult result;
  result.rate_before = rate_.rate();
  result.ranges_before = range_budget();
  // The truth: what the window saw (every page armed there), 0 on the cells outside it.
  const Observation truth = live_.empty() ? observe(grid_, window, written) : observe(grid_, window, written, live_);
  const std::vector<std::uint8_t> mask = window_mask(truth);
  result.whole = mask.empty();
  result.full = exact_density(truth);
  const SamplePlan sampled = sampled_plan(interval);
  auto accuracy = replay(sampled, written, still_armed, result.full, mask, result.reconstructed);
  if (!accuracy) return std::unexpected(accuracy.error());
  result.accuracy = *accuracy;
  ++calibrations_;
  // The budget is judged at the rate this interval was planned with, before the rate moves.
  if (auto adapted = adapt_budget(interval, written, still_armed, result.full, mask, result.accuracy); !adapted)
    return std::unexpected(adapted.error());
  result.rate_after = rate_.update(result.accuracy);
  result.ranges_after = range_budget();
  last_ = result.accuracy;
  if (backs_off()) {
    // Meeting the target is enough to calibrate less often: each calibration arms every page,
    // and every page it armed costs the target a fault when next written, long after the
    // calibration (on `sort` that was most of sampled mode's faults).
    const bool accurate = result.accuracy.trivial() || result.accuracy.f1 >= config_.rate.target_f1;
    gap_ = accurate ? std::min(gap_ * 2, config_.max_every) : config_.every;
    next_ = interval + gap_;
  }
  return result;
}

void CalibrationController::set_grid(PageGrid grid) {
  if (grid.order != grid_.order) reconstructor_ = Reconstructor(grid.order, config_.reconstruction);
  grid_ = grid;
}

}  // namespace haywire::glass
