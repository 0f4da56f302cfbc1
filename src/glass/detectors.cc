#include "haywire/glass/detectors.h"

#include <algorithm>
#include <cmath>

namespace haywire::glass {
namespace {

std::vector<std::uint8_t> active_mask(const DensityMap& map, float threshold, std::uint64_t& count) {
  std::vector<std::uint8_t> mask(map.cells.size());
  count = 0;
  for (std::size_t i = 0; i < map.cells.size(); ++i) {
    mask[i] = map.cells[i] >= threshold;
    count += mask[i];
  }
  return mask;
}

std::uint32_t distinct_blocks(const std::vector<std::uint8_t>& active, unsigned order,
                              std::uint32_t blocks_per_side) {
  const std::uint32_t side = std::uint32_t{1} << order;
  const std::uint32_t per_side = std::clamp<std::uint32_t>(blocks_per_side, 1, side);
  const std::uint32_t block = (side + per_side - 1) / per_side;
  std::vector<std::uint8_t> seen(std::size_t{per_side} * per_side, 0);
  std::uint32_t distinct = 0;
  for (std::uint32_t y = 0; y < side; ++y) {
    for (std::uint32_t x = 0; x < side; ++x) {
      if (!active[std::size_t{y} * side + x]) continue;
      std::uint8_t& s = seen[std::size_t{y / block} * per_side + x / block];
      distinct += !s;
      s = 1;
    }
  }
  return distinct;
}

double median(std::vector<std::uint64_t> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  if (n == 0) return 0.0;
  return n % 2 ? static_cast<double>(v[n / 2])
               : 0.5 * static_cast<double>(v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

void AvalancheDetector::reset() {
  active_counts_.clear();
  previous_active_.clear();
}

Detection AvalancheDetector::update(const DensityMap& map) {
  if (map.order != order_ || map.cells.size() != previous_active_.size()) {
    reset();  // a new grid: history of another geometry means nothing
    order_ = map.order;
  }
  Detection result;
  std::uint64_t active = 0;
  std::vector<std::uint8_t> mask = active_mask(map, config_.active_threshold, active);
  result.cells = active;
  if (active_counts_.size() >= std::max<std::size_t>(config_.min_history, 1)) {
    const double recent = median({active_counts_.begin(), active_counts_.end()});
    const double floor = std::max(static_cast<double>(config_.floor_cells),
                                  config_.floor_fraction * static_cast<double>(map.cells.size()));
    result.measure = static_cast<double>(active) / std::max(recent, 1.0);
    if (static_cast<double>(active) >= floor && result.measure >= config_.growth_factor &&
        distinct_blocks(mask, map.order, config_.blocks_per_side) >= config_.min_blocks) {
      result.detected = true;
      result.mask.resize(mask.size());
      for (std::size_t i = 0; i < mask.size(); ++i) {
        result.mask[i] = (mask[i] && !previous_active_[i]) ? kMaskEntered : kMaskNone;
      }
    }
  }
  active_counts_.push_back(active);
  while (active_counts_.size() > std::max<std::size_t>(config_.history, 1)) active_counts_.pop_front();
  previous_active_ = std::move(mask);
  return result;
}

void PhaseTransitionDetector::reset() {
  recent_.clear();
  since_last_ = ~std::uint64_t{0} >> 1;
}

Detection PhaseTransitionDetector::update(const DensityMap& map) {
  if (map.order != order_ || (!recent_.empty() && recent_.back().size() != map.cells.size())) {
    reset();
    order_ = map.order;
  }
  std::uint64_t unused = 0;
  recent_.push_back(active_mask(map, config_.active_threshold, unused));
  const std::size_t w = std::max<std::size_t>(config_.window, 1);
  while (recent_.size() > 3 * w) recent_.pop_front();
  ++since_last_;
  Detection result;
  if (recent_.size() < 3 * w) return result;

  // Window unions: Q = oldest w masks, P = middle w, C = newest w.
  const std::size_t cells = map.cells.size();
  std::uint64_t c_count = 0, p_count = 0, q_count = 0, cp_and = 0, pq_and = 0;
  for (std::size_t i = 0; i < cells; ++i) {
    std::uint8_t q = 0, p = 0, c = 0;
    for (std::size_t k = 0; k < w; ++k) {
      q |= recent_[k][i];
      p |= recent_[w + k][i];
      c |= recent_[2 * w + k][i];
    }
    c_count += c;
    p_count += p;
    q_count += q;
    cp_and += c & p;
    pq_and += p & q;
  }
  const auto jaccard = [](std::uint64_t both, std::uint64_t a, std::uint64_t b) {
    const std::uint64_t either = a + b - both;
    return either == 0 ? 1.0 : static_cast<double>(both) / static_cast<double>(either);
  };
  const double j_cp = jaccard(cp_and, c_count, p_count);
  const double j_pq = jaccard(pq_and, p_count, q_count);
  result.measure = j_cp;
  result.cells = c_count;
  if (c_count < config_.min_cells || p_count < config_.min_cells) return result;
  if (j_pq < config_.stable_similarity || j_cp >= config_.change_similarity) return result;
  const auto abandoned = static_cast<double>(p_count - cp_and);
  if (abandoned < config_.abandoned_fraction * static_cast<double>(p_count)) return result;
  if (since_last_ <= config_.cooldown) return result;
  since_last_ = 0;
  result.detected = true;
  result.mask.assign(cells, kMaskNone);
  for (std::size_t i = 0; i < cells; ++i) {
    std::uint8_t p = 0, c = 0;
    for (std::size_t k = 0; k < w; ++k) {
      p |= recent_[w + k][i];
      c |= recent_[2 * w + k][i];
    }
    if (c && !p) result.mask[i] = kMaskEntered;
    if (p && !c) result.mask[i] = kMaskLeft;
  }
  return result;
}

}  // namespace haywire::glass
