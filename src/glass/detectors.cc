#include "haywire/glass/detectors.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace haywire::glass {
namespace {

constexpr std::size_t kBits = 64;

std::size_t words_for(std::size_t cells) { return (cells + kBits - 1) / kBits; }

bool bit(const std::vector<std::uint64_t>& mask, std::size_t i) { return ((mask[i / kBits] >> (i % kBits)) & 1u) != 0; }

// Cells at or above `threshold` as bits (row-major); returns how many.
std::uint64_t active_bits(const DensityMap& map, float threshold, std::vector<std::uint64_t>& mask) {
  const std::size_t cells = map.cells.size();
  mask.assign(words_for(cells), 0);
  std::uint64_t count = 0;
  const float* v = map.cells.data();
  for (std::size_t w = 0; w * kBits < cells; ++w) {
    const std::size_t n = std::min(kBits, cells - w * kBits);
    std::uint64_t word = 0;
    for (std::size_t b = 0; b < n; ++b) word |= std::uint64_t{v[w * kBits + b] >= threshold} << b;
    mask[w] = word;
    count += static_cast<std::uint64_t>(std::popcount(word));
  }
  return count;
}

std::uint32_t distinct_blocks(const std::vector<std::uint64_t>& active, unsigned order,
                              std::uint32_t blocks_per_side) {
  const std::uint32_t side = std::uint32_t{1} << order;
  const std::uint32_t per_side = std::clamp<std::uint32_t>(blocks_per_side, 1, side);
  const std::uint32_t block = (side + per_side - 1) / per_side;
  std::vector<std::uint8_t> seen(std::size_t{per_side} * per_side, 0);
  std::uint32_t distinct = 0;
  for (std::uint32_t y = 0; y < side; ++y) {
    for (std::uint32_t x = 0; x < side; ++x) {
      if (!bit(active, std::size_t{y} * side + x)) continue;
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
  cells_ = 0;
}

Detection AvalancheDetector::update(const DensityMap& map) {
  if (map.order != order_ || map.cells.size() != cells_) {
    reset();  // a new grid: history of another geometry means nothing
    order_ = map.order;
    cells_ = map.cells.size();
  }
  Detection result;
  const std::uint64_t active = active_bits(map, config_.active_threshold, active_);
  result.cells = active;
  if (active_counts_.size() >= std::max<std::size_t>(config_.min_history, 1)) {
    const double recent = median({active_counts_.begin(), active_counts_.end()});
    const double floor = std::max(static_cast<double>(config_.floor_cells),
                                  config_.floor_fraction * static_cast<double>(map.cells.size()));
    result.measure = static_cast<double>(active) / std::max(recent, 1.0);
    if (static_cast<double>(active) >= floor && result.measure >= config_.growth_factor &&
        distinct_blocks(active_, map.order, config_.blocks_per_side) >= config_.min_blocks) {
      result.detected = true;
      result.mask.assign(map.cells.size(), kMaskNone);
      for (std::size_t i = 0; i < map.cells.size(); ++i) {
        const bool before = !previous_active_.empty() && bit(previous_active_, i);
        if (bit(active_, i) && !before) result.mask[i] = kMaskEntered;
      }
    }
  }
  active_counts_.push_back(active);
  while (active_counts_.size() > std::max<std::size_t>(config_.history, 1)) active_counts_.pop_front();
  std::swap(previous_active_, active_);
  return result;
}

void PhaseTransitionDetector::reset() {
  recent_.clear();
  next_ = 0;
  filled_ = 0;
  cells_ = 0;
  since_last_ = ~std::uint64_t{0} >> 1;
}

Detection PhaseTransitionDetector::update(const DensityMap& map) {
  const std::size_t w = std::max<std::size_t>(config_.window, 1);
  if (map.order != order_ || map.cells.size() != cells_) {
    reset();
    order_ = map.order;
    cells_ = map.cells.size();
  }
  if (recent_.size() != 3 * w) recent_.assign(3 * w, {});
  (void)active_bits(map, config_.active_threshold, recent_[next_]);
  next_ = (next_ + 1) % recent_.size();
  filled_ = std::min(filled_ + 1, recent_.size());
  ++since_last_;
  Detection result;
  if (filled_ < 3 * w) return result;

  // Window unions: Q = oldest w masks, P = middle w, C = newest w (next_ is the oldest now).
  const std::size_t words = words_for(cells_);
  const auto mask = [&](std::size_t k) -> const std::vector<std::uint64_t>& {
    return recent_[(next_ + k) % recent_.size()];
  };
  std::vector<std::uint64_t> p_union(words, 0);
  std::vector<std::uint64_t> c_union(words, 0);
  std::uint64_t c_count = 0, p_count = 0, q_count = 0, cp_and = 0, pq_and = 0;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t q = 0, p = 0, c = 0;
    for (std::size_t k = 0; k < w; ++k) {
      q |= mask(k)[i];
      p |= mask(w + k)[i];
      c |= mask(2 * w + k)[i];
    }
    p_union[i] = p;
    c_union[i] = c;
    c_count += static_cast<std::uint64_t>(std::popcount(c));
    p_count += static_cast<std::uint64_t>(std::popcount(p));
    q_count += static_cast<std::uint64_t>(std::popcount(q));
    cp_and += static_cast<std::uint64_t>(std::popcount(c & p));
    pq_and += static_cast<std::uint64_t>(std::popcount(p & q));
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
  result.mask.assign(cells_, kMaskNone);
  for (std::size_t i = 0; i < cells_; ++i) {
    const bool p = bit(p_union, i);
    const bool c = bit(c_union, i);
    if (c && !p) result.mask[i] = kMaskEntered;
    if (p && !c) result.mask[i] = kMaskLeft;
  }
  return result;
}

}  // namespace haywire::glass
