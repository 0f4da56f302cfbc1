// A density map: how much writing each cell of a Hilbert grid saw in one interval.
#pragma once

#include <cstdint>
#include <vector>

namespace haywire::glass {

// (2^order) x (2^order) cells, row-major (index y * side + x), values 0.0 (no writes) to 1.0
// (the busiest cell, or a fixed full-scale rate). Produced by tracking (full mode) or
// reconstruction (sampled mode); consumed by rendering and the detectors.
struct DensityMap {
  unsigned order = 0;
  std::vector<float> cells;

  DensityMap() = default;
  explicit DensityMap(unsigned grid_order)
      : order(grid_order), cells(std::size_t{1} << (2 * grid_order), 0.0f) {}
  [[nodiscard]] std::uint32_t side() const { return std::uint32_t{1} << order; }
  [[nodiscard]] float& at(std::uint32_t x, std::uint32_t y) { return cells[std::size_t{y} * side() + x]; }
  [[nodiscard]] float at(std::uint32_t x, std::uint32_t y) const { return cells[std::size_t{y} * side() + x]; }
};

}  // namespace haywire::glass
