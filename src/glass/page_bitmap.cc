#include "haywire/glass/page_bitmap.h"

#include <algorithm>
#include <cassert>

namespace haywire::glass {
namespace {

constexpr std::uint64_t kWordBits = 64;

// Bits [lo, hi) of one word (0 <= lo < hi <= 64).
constexpr std::uint64_t word_mask(std::uint64_t lo, std::uint64_t hi) {
  const std::uint64_t upper = hi == kWordBits ? ~std::uint64_t{0} : (std::uint64_t{1} << hi) - 1;
  return upper & ~((std::uint64_t{1} << lo) - 1);
}

}  // namespace

PageBitmap::PageBitmap(std::vector<PageRange> frame) : frame_(std::move(frame)) {
  first_bit_.reserve(frame_.size());
  for (const PageRange& r : frame_) {
    first_bit_.push_back(pages_);
    pages_ += r.pages();
  }
  words_.assign((pages_ + kWordBits - 1) / kWordBits, 0);
}

void PageBitmap::assign_bits(std::uint64_t from, std::uint64_t to, bool value) {
  if (from >= to) return;
  const std::uint64_t first = from / kWordBits;
  const std::uint64_t last = (to - 1) / kWordBits;
  if (first == last) {  // the common case for scattered pages
    const std::uint64_t mask = word_mask(from % kWordBits, to - last * kWordBits);
    words_[first] = value ? words_[first] | mask : words_[first] & ~mask;
    return;
  }
  for (std::uint64_t w = first; w <= last; ++w) {
    const std::uint64_t lo = w == first ? from % kWordBits : 0;
    const std::uint64_t hi = w == last ? to - last * kWordBits : kWordBits;
    const std::uint64_t mask = word_mask(lo, hi);
    words_[w] = value ? words_[w] | mask : words_[w] & ~mask;
  }
}

bool PageBitmap::all_bits(std::uint64_t from, std::uint64_t to) const {
  return next_clear(from, to) == to;
}

template <bool kValue>
void PageBitmap::apply(std::span<const PageRange> ranges) {
  std::size_t i = 0;  // the frame range where the previous input range ended
  for (const PageRange& r : ranges) {
    if (r.start >= r.end) continue;
    // Sorted input only moves forward; a range that starts before where the last one ended
    // (unsorted input) looks from the frame's first range again.
    if (i > 0 && r.start < frame_[i - 1].end) i = 0;
    while (i < frame_.size() && frame_[i].end <= r.start) ++i;
    for (std::size_t j = i; j < frame_.size() && frame_[j].start < r.end; ++j) {
      const VirtAddr lo = std::max(r.start, frame_[j].start);
      const VirtAddr hi = std::min(r.end, frame_[j].end);
      if (lo >= hi) continue;
      assign_bits(first_bit_[j] + (lo - frame_[j].start) / kPageSize,
                  first_bit_[j] + (hi - frame_[j].start + kPageSize - 1) / kPageSize, kValue);
    }
  }
}

void PageBitmap::add(std::span<const PageRange> ranges) { apply<true>(ranges); }
void PageBitmap::remove(std::span<const PageRange> ranges) { apply<false>(ranges); }

void PageBitmap::fill() {
  std::fill(words_.begin(), words_.end(), ~std::uint64_t{0});
  if (pages_ % kWordBits != 0) words_.back() = word_mask(0, pages_ % kWordBits);
}

void PageBitmap::clear() { std::fill(words_.begin(), words_.end(), 0); }

bool PageBitmap::contains(const PageRange& range) const {
  if (range.start >= range.end) return true;
  auto it = std::upper_bound(frame_.begin(), frame_.end(), range.start,
                             [](VirtAddr a, const PageRange& f) { return a < f.start; });
  if (it == frame_.begin()) return false;
  --it;
  // The range must lie in frame ranges that follow each other without a hole.
  VirtAddr at = range.start;
  for (; it != frame_.end() && at < range.end; ++it) {
    if (it->start > at || it->end <= at) return false;
    const VirtAddr hi = std::min(range.end, it->end);
    const std::uint64_t base = first_bit_[static_cast<std::size_t>(it - frame_.begin())];
    if (!all_bits(base + (at - it->start) / kPageSize, base + (hi - it->start + kPageSize - 1) / kPageSize))
      return false;
    at = hi;
  }
  return at >= range.end;
}

std::uint64_t PageBitmap::count() const {
  std::uint64_t n = 0;
  for (std::uint64_t w : words_) n += static_cast<std::uint64_t>(std::popcount(w));
  return n;
}

PageBitmap& PageBitmap::operator|=(const PageBitmap& other) {
  assert(frame_ == other.frame_);
  for (std::size_t w = 0; w < words_.size(); ++w) words_[w] |= other.words_[w];
  return *this;
}

PageBitmap& PageBitmap::operator&=(const PageBitmap& other) {
  assert(frame_ == other.frame_);
  for (std::size_t w = 0; w < words_.size(); ++w) words_[w] &= other.words_[w];
  return *this;
}

PageBitmap& PageBitmap::subtract(const PageBitmap& other) {
  assert(frame_ == other.frame_);
  for (std::size_t w = 0; w < words_.size(); ++w) words_[w] &= ~other.words_[w];
  return *this;
}

std::vector<PageRange> PageBitmap::ranges() const {
  // Word by word: a run inside one word costs two bit scans, and a run that goes on into the
  // next word (or the next frame range, when they touch) extends the last range.
  std::vector<PageRange> out;
  for (std::size_t i = 0; i < frame_.size(); ++i) {
    const std::uint64_t base = first_bit_[i];
    const std::uint64_t end = base + frame_[i].pages();
    const std::uint64_t start_address = frame_[i].start.value() - base * kPageSize;  // address of bit 0
    for (std::uint64_t w = base / kWordBits; w * kWordBits < end; ++w) {
      const std::uint64_t lo = w * kWordBits < base ? base - w * kWordBits : 0;
      const std::uint64_t hi = std::min(kWordBits, end - w * kWordBits);
      std::uint64_t bits = words_[w] & word_mask(lo, hi);
      while (bits != 0) {
        const auto first = static_cast<std::uint64_t>(std::countr_zero(bits));
        const auto ones = static_cast<std::uint64_t>(std::countr_one(bits >> first));
        const VirtAddr from(start_address + (w * kWordBits + first) * kPageSize);
        const VirtAddr to = from + ones * kPageSize;
        if (!out.empty() && out.back().end == from) {
          out.back().end = to;
        } else {
          out.push_back({from, to});
        }
        if (first + ones >= kWordBits) break;
        bits &= ~word_mask(0, first + ones);
      }
    }
  }
  return out;
}

PageBitmap PageBitmap::rebased(std::vector<PageRange> frame) const {
  PageBitmap out(std::move(frame));
  if (out.frame_ == frame_) {
    out.words_ = words_;
    return out;
  }
  out.add(ranges());
  return out;
}

}  // namespace haywire::glass
