// The classic rotate/flip Hilbert loop (Wikipedia, "Hilbert curve"): slow but obviously right.
// Tests check the fast code against it; the benchmark uses it as the baseline.
#pragma once

#include <cstdint>
#include <utility>

#include "haywire/glass/hilbert.h"

namespace haywire::glass::reference {

inline void rotate(std::uint32_t side, std::uint32_t& x, std::uint32_t& y, std::uint32_t rx,
                   std::uint32_t ry) {
  if (ry == 0) {
    if (rx == 1) {
      x = side - 1 - x;
      y = side - 1 - y;
    }
    std::swap(x, y);
  }
}

inline Cell d2xy(unsigned order, std::uint64_t d) {
  const std::uint32_t side = std::uint32_t{1} << order;
  std::uint32_t x = 0;
  std::uint32_t y = 0;
  std::uint64_t t = d;
  for (std::uint32_t s = 1; s < side; s *= 2) {
    const auto rx = static_cast<std::uint32_t>(1 & (t / 2));
    const auto ry = static_cast<std::uint32_t>(1 & (t ^ rx));
    rotate(s, x, y, rx, ry);
    x += s * rx;
    y += s * ry;
    t /= 4;
  }
  return {x, y};
}

inline std::uint64_t xy2d(unsigned order, std::uint32_t x, std::uint32_t y) {
  const std::uint32_t side = std::uint32_t{1} << order;
  std::uint64_t d = 0;
  for (std::uint32_t s = side / 2; s > 0; s /= 2) {
    const std::uint32_t rx = (x & s) > 0 ? 1 : 0;
    const std::uint32_t ry = (y & s) > 0 ? 1 : 0;
    d += std::uint64_t{s} * s * ((3 * rx) ^ ry);
    rotate(side, x, y, rx, ry);
  }
  return d;
}

}  // namespace haywire::glass::reference
