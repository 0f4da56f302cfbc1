// A set of pages within a frame of address ranges, one bit per page.
//
// The tracker's sets in sampled mode (the pages it watches, the ones a walk found unarmed, the
// ones known to be armed) are fragmented: a process that writes scattered pages leaves tens of
// thousands of runs in each. As range lists every set operation is a pass over all of those
// runs, with an allocation; as bitmaps over the tracked memory it is a pass over 4,096 words
// per GiB. Ranges go in and come out at the edges (the kernel's scan output, the monitor's
// report).
//
// The frame is a normalized list of page ranges (the tracker's registered memory). Pages
// outside it are never in the set: adding them does nothing. Binary operations need both sides
// on the same frame; rebased() moves a set to another one.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "haywire/glass/pagemap_scan.h"

namespace haywire::glass {

class PageBitmap {
 public:
  PageBitmap() = default;
  // An empty set on `frame` (normalized and page-aligned, as the tracker's ranges are).
  explicit PageBitmap(std::vector<PageRange> frame);

  [[nodiscard]] const std::vector<PageRange>& frame() const { return frame_; }
  [[nodiscard]] std::uint64_t frame_pages() const { return pages_; }

  // Adds or removes the pages of `ranges` that lie in the frame. Sorted input (normalized
  // lists) takes one pass over the frame; unsorted input is fine, only slower.
  void add(std::span<const PageRange> ranges);
  void remove(std::span<const PageRange> ranges);
  void add(const PageRange& range) { add(std::span<const PageRange>(&range, 1)); }
  void remove(const PageRange& range) { remove(std::span<const PageRange>(&range, 1)); }
  void fill();   // every page of the frame
  void clear();  // none

  // Whether every page of `range` is in the set (false if part of it lies outside the frame).
  [[nodiscard]] bool contains(const PageRange& range) const;
  [[nodiscard]] std::uint64_t count() const;
  [[nodiscard]] bool empty() const { return count() == 0; }

  // Word-wise set operations; `other` must be on the same frame.
  PageBitmap& operator|=(const PageBitmap& other);
  PageBitmap& operator&=(const PageBitmap& other);
  PageBitmap& subtract(const PageBitmap& other);  // this & ~other

  // The set as a normalized range list (runs that meet across two adjacent frame ranges join).
  [[nodiscard]] std::vector<PageRange> ranges() const;
  // Calls fn(PageRange) for each run of set pages, in address order (runs are cut at frame
  // range boundaries; adjacent ones are not joined).
  template <typename Fn>
  void for_each_run(Fn&& fn) const;

  // The same pages on another frame: pages outside it are dropped, pages new to it are clear.
  [[nodiscard]] PageBitmap rebased(std::vector<PageRange> frame) const;

  bool operator==(const PageBitmap&) const = default;

 private:
  // Bits [from, to) to one value.
  void assign_bits(std::uint64_t from, std::uint64_t to, bool value);
  [[nodiscard]] bool all_bits(std::uint64_t from, std::uint64_t to) const;
  // The first set bit in [from, to), or `to`; the first clear one likewise.
  [[nodiscard]] std::uint64_t next_set(std::uint64_t from, std::uint64_t to) const {
    return next_bit<false>(from, to);
  }
  [[nodiscard]] std::uint64_t next_clear(std::uint64_t from, std::uint64_t to) const {
    return next_bit<true>(from, to);
  }
  template <bool kInvert>
  [[nodiscard]] std::uint64_t next_bit(std::uint64_t from, std::uint64_t to) const {
    while (from < to) {
      const std::uint64_t w = from / 64;
      const std::uint64_t bits = (kInvert ? ~words_[w] : words_[w]) >> (from % 64);
      if (bits != 0) return std::min(to, from + static_cast<std::uint64_t>(std::countr_zero(bits)));
      from = (w + 1) * 64;
    }
    return to;
  }
  template <bool kValue>
  void apply(std::span<const PageRange> ranges);

  std::vector<PageRange> frame_;
  std::vector<std::uint64_t> first_bit_;  // per frame range: the bit of its first page
  std::vector<std::uint64_t> words_;      // bits past pages_ stay clear
  std::uint64_t pages_ = 0;
};

template <typename Fn>
void PageBitmap::for_each_run(Fn&& fn) const {
  for (std::size_t i = 0; i < frame_.size(); ++i) {
    const std::uint64_t base = first_bit_[i];
    const std::uint64_t end = base + frame_[i].pages();
    std::uint64_t bit = next_set(base, end);
    while (bit < end) {
      const std::uint64_t stop = next_clear(bit, end);
      fn(PageRange{frame_[i].start + (bit - base) * kPageSize, frame_[i].start + (stop - base) * kPageSize});
      bit = next_set(stop, end);
    }
  }
}

}  // namespace haywire::glass
