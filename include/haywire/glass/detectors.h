// Two detectors over the sequence of per-interval density maps (full or reconstructed).
// Feed each interval's map once, in order; each call says whether the event fired in that
// interval and which cells to highlight (a mask in the map's row-major layout, for the render
// overlay). Definitions (also docs/glass.md "Detectors"):
//
// A cell is *active* in an interval when its density >= active_threshold (default 0.25).
//
// MEMORY AVALANCHE in interval t, with A_t = active cells in t and M_t = the median of A over
// the previous `history` intervals (at least `min_history` of them must exist), when all hold:
//   (1) A_t >= max(floor_cells, floor_fraction * cells)          a burst of absolute size,
//   (2) A_t >= growth_factor * max(M_t, 1)                       sudden relative to recent past,
//   (3) the active cells of t fall in >= min_blocks distinct blocks of the coarse
//       blocks_per_side x blocks_per_side partition of the grid    spread, not one hot spot.
// Highlight: cells active in t that were not active in t-1 (where the burst spread to).
//
// PHASE TRANSITION in interval t: with windows of `window` intervals, C = cells active in any
// of (t-w, t], P = the same over (t-2w, t-w], Q = over (t-3w, t-2w], and J = Jaccard
// similarity |X & Y| / |X | Y|, when all hold:
//   (1) |C| >= min_cells and |P| >= min_cells                   both working sets non-trivial,
//   (2) J(P, Q) >= stable_similarity                            the old working set was stable,
//   (3) J(C, P) < change_similarity                             and has been replaced:
//   (4) |P \ C| >= abandoned_fraction * |P|                     most of it is no longer
//       written (without (4) a burst or growth on top of a steady set would count: the
//       working set grew, it did not move),
//   (5) no transition was reported in the previous `cooldown` intervals.
// Condition (2) is what keeps a steady sweep quiet: a sweep's working set moves every window,
// so it never looks stable, and a transition is by definition a stable set being replaced.
// (Consequence: leaving a sweep phase for a stable one is not reported; see the docs.)
// Highlight: kEntered for C \ P (the new working set), kLeft for P \ C (the abandoned one).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "haywire/glass/density.h"

namespace haywire::glass {

inline constexpr float kDefaultActiveThreshold = 0.25f;

enum MaskValue : std::uint8_t { kMaskNone = 0, kMaskEntered = 1, kMaskLeft = 2 };

struct Detection {
  bool detected = false;
  std::vector<std::uint8_t> mask;  // row-major like DensityMap::cells; empty when !detected
  // What the decision was based on (for telemetry, logs and tests).
  double measure = 0.0;   // avalanche: A_t / max(M_t, 1); phase: J(C, P)
  std::uint64_t cells = 0;  // avalanche: A_t; phase: |C|
};

struct AvalancheConfig {
  float active_threshold = kDefaultActiveThreshold;
  std::uint64_t floor_cells = 64;
  double floor_fraction = 1.0 / 256;
  double growth_factor = 4.0;
  std::uint32_t blocks_per_side = 8;
  std::uint32_t min_blocks = 8;
  std::size_t history = 16;
  std::size_t min_history = 3;
};

class AvalancheDetector {
 public:
  explicit AvalancheDetector(AvalancheConfig config = {}) : config_(config) {}
  Detection update(const DensityMap& map);
  void reset();

 private:
  AvalancheConfig config_;
  std::deque<std::uint64_t> active_counts_;
  std::vector<std::uint64_t> previous_active_;  // bit per cell, row-major
  std::vector<std::uint64_t> active_;           // this interval's, reused
  std::size_t cells_ = 0;
  unsigned order_ = 0;
};

struct PhaseConfig {
  float active_threshold = kDefaultActiveThreshold;
  std::size_t window = 2;
  std::uint64_t min_cells = 32;
  double stable_similarity = 0.5;
  double change_similarity = 0.2;
  double abandoned_fraction = 0.5;
  std::size_t cooldown = 8;
};

class PhaseTransitionDetector {
 public:
  explicit PhaseTransitionDetector(PhaseConfig config = {}) : config_(config) {}
  Detection update(const DensityMap& map);
  void reset();

 private:
  PhaseConfig config_;
  // Active masks of the last 3 windows (a bit per cell), a ring: recent_[(next_ + k) % size]
  // is the k-th oldest once full. Bits keep a window union a few hundred word ORs at order 8.
  std::vector<std::vector<std::uint64_t>> recent_;
  std::size_t next_ = 0;    // ring slot the next mask goes to
  std::size_t filled_ = 0;  // masks held (up to 3 windows)
  std::size_t cells_ = 0;
  std::uint64_t since_last_ = ~std::uint64_t{0} >> 1;
  unsigned order_ = 0;
};

}  // namespace haywire::glass
