// Reconstruction: the full density map of an interval from the pages that were armed in it.
//
// Input is per cell (by Hilbert index d): pages held, pages armed, armed pages written. Output
// is a DensityMap whose value per cell estimates the fraction of the cell's pages written.
//
// Method (docs/glass.md "Reconstruction" says why): the sampled cells, taken in curve order
// (which is address order), are denoised by an exact weighted 1-D total-variation solve
// (fused lasso, Johnson's O(n) dynamic programme; weight = pages armed in the cell); each
// unsampled cell then takes the value of the nearer sampled cell along the curve. Address
// order is where the locality of real write patterns lives; on the Hilbert grid every
// aligned 4^k block of curve indices is a square, so curve neighbours are grid neighbours.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/glass/density.h"
#include "haywire/glass/sampling.h"

namespace haywire::glass {

// What tracking saw in one interval, per cell by Hilbert index d (each vector 4^order long).
struct Observation {
  unsigned order = 0;
  std::vector<std::uint32_t> pages;    // pages held by the cell
  std::vector<std::uint32_t> armed;    // pages armed (== pages in full mode)
  std::vector<std::uint32_t> written;  // armed pages written (<= armed)
};

// Counts of an interval in which the pages of `armed` were armed and tracking reported the
// pages of `written` (sorted, disjoint; pages outside `armed` are ignored, so the full
// tracking result of a calibration interval can be replayed against any plan).
Observation observe(const PageGrid& grid, std::span<const PageIndexRange> armed,
                    std::span<const PageIndexRange> written);
// The same when only the slots of `live` (sorted, disjoint) hold tracked pages, as with an
// AddressLayout that keeps the slots of unmapped memory reserved: pages, armed and written
// count live slots only, so reserved slots neither dilute densities nor pose as unwritten
// samples.
Observation observe(const PageGrid& grid, std::span<const PageIndexRange> armed,
                    std::span<const PageIndexRange> written, std::span<const PageIndexRange> live);

// The density of a full observation (written / pages per cell; 0 where a cell has no pages).
// Also what reconstruction returns when every page was armed.
DensityMap exact_density(const Observation& full);

enum class ReconstructionMethod {
  kCurveTv,          // the default: 1-D weighted TV along the curve, nearest fill
  kZeroFill,         // baseline: sampled cells their observed ratio, unsampled cells 0
  kNearestOnGrid,    // baseline: each unsampled cell copies the nearest sampled cell on the
                     // 2-D grid (4-neighbour distance, ties to the first found)
  kNearestOnCurve,   // ablation: kCurveTv without the TV denoising
};

struct ReconstructionConfig {
  ReconstructionMethod method = ReconstructionMethod::kCurveTv;
  // TV weight in "pages": a run of sampled cells whose armed pages total less than about
  // 2 * lambda / (level difference) is merged into its neighbours.
  double lambda = 0.5;
};

struct ReconstructionStats {
  std::uint64_t sampled_cells = 0;
  std::uint64_t armed_pages = 0;
  double estimated_written_pages = 0.0;  // sum over cells of density * pages
};

// Keeps the curve -> grid table and scratch buffers of one order: reuse it every interval.
class Reconstructor {
 public:
  // order in [1, 12] (the spec's range; asserted): 4^order cells of tables are allocated.
  explicit Reconstructor(unsigned order, ReconstructionConfig config = {});

  // Writes the estimate into `out` (resized to the order). InvalidArgument if the
  // observation's order or vector sizes do not match.
  Result<ReconstructionStats> reconstruct(const Observation& observation, DensityMap& out);

  // The last estimate by Hilbert index d.
  [[nodiscard]] std::span<const float> by_curve() const { return estimate_; }
  [[nodiscard]] unsigned order() const { return order_; }
  [[nodiscard]] const ReconstructionConfig& config() const { return config_; }

 private:
  void fill_nearest_on_curve(const Observation& obs);
  void fill_nearest_on_grid(const Observation& obs);

  unsigned order_;
  ReconstructionConfig config_;
  std::span<const std::uint32_t> grid_index_;  // d -> y * side + x (hilbert_row_major_table)
  std::vector<std::uint32_t> sample_at_;   // scratch: sampled curve positions
  std::vector<double> y_, w_, beta_;       // scratch: the TV problem
  std::vector<double> knots_, slope_, offset_, lower_, upper_;  // scratch: the DP
  std::vector<float> estimate_;            // by d
  std::vector<std::int32_t> queue_;        // scratch: grid BFS
};

// Exact minimiser of  sum_i w_i/2 (y_i - beta_i)^2 + lambda * sum_i |beta_{i+1} - beta_i|
// (w_i > 0) into `beta` (same size as y). Exposed for tests.
void fused_lasso_1d(std::span<const double> y, std::span<const double> w, double lambda,
                    std::span<double> beta);

}  // namespace haywire::glass
