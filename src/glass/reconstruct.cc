#include "haywire/glass/reconstruct.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include <fmt/format.h>

#include "haywire/glass/hilbert.h"

namespace haywire::glass {
namespace {

struct DpScratch {
  std::vector<double>* knots;
  std::vector<double>* slope;
  std::vector<double>* offset;
  std::vector<double>* lower;
  std::vector<double>* upper;
};

// Johnson (2013), "A dynamic programming algorithm for the fused lasso and L0-segmentation",
// in the form of Tibshirani's glmgen (tf_dp_weight). The derivative of the cost-to-come as a
// function of beta_k is piecewise linear; its breakpoints (knots) live in [l, r] with the
// slope/offset change at each, so each step only walks the knots it removes: O(n) overall.
// lower[k]/upper[k] are the back-pointers: beta_k = clamp(beta_{k+1}, lower[k], upper[k]).
void fused_lasso_dp(std::span<const double> y, std::span<const double> w, double lambda,
                    std::span<double> beta, DpScratch s) {
  const std::size_t n = y.size();
  if (n == 0) return;
  if (n == 1 || lambda <= 0.0) {
    std::copy(y.begin(), y.end(), beta.begin());
    return;
  }
  std::vector<double>& x = *s.knots;
  std::vector<double>& a = *s.slope;
  std::vector<double>& b = *s.offset;
  std::vector<double>& lo_knot = *s.lower;
  std::vector<double>& hi_knot = *s.upper;
  x.resize(2 * n);
  a.resize(2 * n);
  b.resize(2 * n);
  lo_knot.resize(n - 1);
  hi_knot.resize(n - 1);

  lo_knot[0] = y[0] - lambda / w[0];
  hi_knot[0] = y[0] + lambda / w[0];
  std::size_t l = n - 1;
  std::size_t r = n;
  x[l] = lo_knot[0];
  x[r] = hi_knot[0];
  a[l] = w[0];
  b[l] = -w[0] * y[0] + lambda;
  a[r] = -w[0];
  b[r] = w[0] * y[0] + lambda;
  double a_first = w[1];
  double b_first = -w[1] * y[1] - lambda;
  double a_last = -w[1];
  double b_last = w[1] * y[1] - lambda;

  for (std::size_t k = 1; k + 1 < n; ++k) {
    double a_lo = a_first;
    double b_lo = b_first;
    std::size_t lo = l;
    for (; lo <= r; ++lo) {
      if (a_lo * x[lo] + b_lo > -lambda) break;
      a_lo += a[lo];
      b_lo += b[lo];
    }
    double a_hi = a_last;
    double b_hi = b_last;
    std::size_t hi = r;
    for (; hi >= lo; --hi) {
      if (-a_hi * x[hi] - b_hi < lambda) break;
      a_hi += a[hi];
      b_hi += b[hi];
    }
    lo_knot[k] = (-lambda - b_lo) / a_lo;
    l = lo - 1;
    x[l] = lo_knot[k];
    hi_knot[k] = (lambda + b_hi) / (-a_hi);
    r = hi + 1;
    x[r] = hi_knot[k];
    a[l] = a_lo;
    b[l] = b_lo + lambda;
    a[r] = a_hi;
    b[r] = b_hi + lambda;
    a_first = w[k + 1];
    b_first = -w[k + 1] * y[k + 1] - lambda;
    a_last = -w[k + 1];
    b_last = w[k + 1] * y[k + 1] - lambda;
  }

  double a_lo = a_first;
  double b_lo = b_first;
  for (std::size_t lo = l; lo <= r; ++lo) {
    if (a_lo * x[lo] + b_lo > 0.0) break;
    a_lo += a[lo];
    b_lo += b[lo];
  }
  beta[n - 1] = -b_lo / a_lo;
  for (std::size_t k = n - 1; k-- > 0;) {
    beta[k] = std::clamp(beta[k + 1], lo_knot[k], hi_knot[k]);
  }
}

bool sizes_match(const Observation& obs, std::size_t cells) {
  return obs.pages.size() == cells && obs.armed.size() == cells && obs.written.size() == cells;
}

}  // namespace

void fused_lasso_1d(std::span<const double> y, std::span<const double> w, double lambda,
                    std::span<double> beta) {
  std::vector<double> x, a, b, lo, hi;
  fused_lasso_dp(y, w, lambda, beta, {&x, &a, &b, &lo, &hi});
}

Observation observe(const PageGrid& grid, std::span<const PageIndexRange> armed,
                    std::span<const PageIndexRange> written) {
  Observation obs;
  obs.order = grid.order;
  obs.pages.resize(grid.cell_count());
  for (std::uint64_t d = 0; d < grid.cell_count(); ++d) obs.pages[d] = grid.pages_in(d);
  obs.armed = pages_per_cell(grid, armed);
  const std::vector<PageIndexRange> seen = intersect(armed, written);
  obs.written = pages_per_cell(grid, seen);
  return obs;
}

Observation observe(const PageGrid& grid, std::span<const PageIndexRange> armed,
                    std::span<const PageIndexRange> written, std::span<const PageIndexRange> live) {
  Observation obs;
  obs.order = grid.order;
  obs.pages = pages_per_cell(grid, live);
  const std::vector<PageIndexRange> live_armed = intersect(armed, live);
  obs.armed = pages_per_cell(grid, live_armed);
  obs.written = pages_per_cell(grid, intersect(live_armed, written));
  return obs;
}

DensityMap exact_density(const Observation& full) {
  DensityMap map(full.order);
  const std::size_t cells = map.cells.size();
  if (!sizes_match(full, cells)) return map;
  const std::span<const std::uint32_t> grid_index = hilbert_row_major_table(full.order);
  for (std::size_t d = 0; d < cells; ++d) {
    if (full.pages[d] == 0) continue;
    map.cells[grid_index[d]] = static_cast<float>(full.written[d]) / static_cast<float>(full.pages[d]);
  }
  return map;
}

Reconstructor::Reconstructor(unsigned order, ReconstructionConfig config)
    : order_(order), config_(config) {
  assert(order >= kMinHilbertOrder && order <= 12 && "the spec's orders: 4^order cells are allocated");
  grid_index_ = hilbert_row_major_table(order);
  estimate_.resize(grid_index_.size());
}

Result<ReconstructionStats> Reconstructor::reconstruct(const Observation& obs, DensityMap& out) {
  const std::size_t cells = grid_index_.size();
  if (obs.order != order_ || !sizes_match(obs, cells)) {
    return fail(InvalidArgument{fmt::format(
        "observation of order {} with {}/{}/{} cells given to a reconstructor of order {} ({} cells)",
        obs.order, obs.pages.size(), obs.armed.size(), obs.written.size(), order_, cells)});
  }
  ReconstructionStats stats;
  bool full = true;
  sample_at_.clear();
  for (std::size_t d = 0; d < cells; ++d) {
    if (obs.armed[d] > 0 && obs.pages[d] > 0) sample_at_.push_back(static_cast<std::uint32_t>(d));
    stats.armed_pages += obs.armed[d];
    full = full && obs.armed[d] >= obs.pages[d];
  }
  stats.sampled_cells = sample_at_.size();

  if (full || config_.method == ReconstructionMethod::kZeroFill) {
    for (std::size_t d = 0; d < cells; ++d) {
      estimate_[d] = obs.armed[d] == 0 ? 0.0f
                                       : static_cast<float>(std::min(obs.written[d], obs.armed[d])) /
                                             static_cast<float>(obs.armed[d]);
    }
  } else if (config_.method == ReconstructionMethod::kNearestOnGrid) {
    fill_nearest_on_grid(obs);
  } else {
    fill_nearest_on_curve(obs);
  }

  out.order = order_;
  out.cells.assign(cells, 0.0f);
  double written = 0.0;
  for (std::size_t d = 0; d < cells; ++d) {
    if (obs.pages[d] == 0) estimate_[d] = 0.0f;
    out.cells[grid_index_[d]] = estimate_[d];
    written += static_cast<double>(estimate_[d]) * obs.pages[d];
  }
  stats.estimated_written_pages = written;
  return stats;
}

void Reconstructor::fill_nearest_on_curve(const Observation& obs) {
  const std::size_t n = sample_at_.size();
  if (n == 0) {
    std::fill(estimate_.begin(), estimate_.end(), 0.0f);
    return;
  }
  y_.resize(n);
  w_.resize(n);
  beta_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t d = sample_at_[i];
    w_[i] = obs.armed[d];
    y_[i] = static_cast<double>(std::min(obs.written[d], obs.armed[d])) / w_[i];
  }
  if (config_.method == ReconstructionMethod::kCurveTv) {
    fused_lasso_dp(y_, w_, config_.lambda, beta_, {&knots_, &slope_, &offset_, &lower_, &upper_});
  } else {
    beta_ = y_;
  }
  // Each cell takes the nearer sampled cell along the curve (the left one on a tie).
  std::size_t next = 0;  // first sample at or after d
  const std::size_t cells = estimate_.size();
  for (std::size_t d = 0; d < cells; ++d) {
    while (next < n && sample_at_[next] < d) ++next;
    double value;
    if (next == n) {
      value = beta_[n - 1];
    } else if (sample_at_[next] == d || next == 0) {
      value = beta_[next];
    } else {
      value = (d - sample_at_[next - 1] <= sample_at_[next] - d) ? beta_[next - 1] : beta_[next];
    }
    estimate_[d] = static_cast<float>(std::clamp(value, 0.0, 1.0));
  }
}

void Reconstructor::fill_nearest_on_grid(const Observation& obs) {
  // Multi-source breadth-first search on the grid: every cell copies the sample that reaches
  // it first (4-neighbour distance).
  const std::size_t cells = estimate_.size();
  const auto side = static_cast<std::int32_t>(std::uint32_t{1} << order_);
  std::vector<float> grid_value(cells, -1.0f);
  queue_.clear();
  queue_.reserve(cells);
  for (std::uint32_t d : sample_at_) {
    const std::uint32_t g = grid_index_[d];
    grid_value[g] = static_cast<float>(std::min(obs.written[d], obs.armed[d])) /
                    static_cast<float>(obs.armed[d]);
    queue_.push_back(static_cast<std::int32_t>(g));
  }
  for (std::size_t head = 0; head < queue_.size(); ++head) {
    const std::int32_t g = queue_[head];
    const std::int32_t x = g % side;
    const std::int32_t y = g / side;
    const std::int32_t neighbours[4] = {x > 0 ? g - 1 : -1, x + 1 < side ? g + 1 : -1,
                                        y > 0 ? g - side : -1, y + 1 < side ? g + side : -1};
    for (std::int32_t nb : neighbours) {
      if (nb < 0 || grid_value[static_cast<std::size_t>(nb)] >= 0.0f) continue;
      grid_value[static_cast<std::size_t>(nb)] = grid_value[static_cast<std::size_t>(g)];
      queue_.push_back(nb);
    }
  }
  for (std::size_t d = 0; d < cells; ++d) estimate_[d] = std::max(0.0f, grid_value[grid_index_[d]]);
}

}  // namespace haywire::glass
