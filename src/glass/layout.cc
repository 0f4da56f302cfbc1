#include "haywire/glass/layout.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>

#include <fmt/format.h>

namespace haywire::glass {
namespace {

// Highest page-aligned exclusive end a window may have (2^64 itself is not representable).
constexpr std::uint64_t kTopOfAddressSpace = ~std::uint64_t{0} & ~(kPageSize - 1);
// Per-cell page counts are 32-bit: a cell holds at most 2^31 pages (8 TiB).
constexpr unsigned kMaxCellShift = 31;

std::uint64_t cell_count(unsigned order) { return std::uint64_t{1} << (2 * order); }

Result<std::vector<VirtRange>> validated(std::span<const VirtRange> regions) {
  std::vector<VirtRange> sorted(regions.begin(), regions.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const VirtRange& a, const VirtRange& b) { return a.start < b.start; });
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const VirtRange& r = sorted[i];
    const std::uint64_t start = r.start.value();
    const std::uint64_t end = r.end.value();
    if (start >= end) {
      return std::unexpected(InvalidArgument{
          fmt::format("region [{:#x}, {:#x}) is empty or reversed", start, end)});
    }
    if (start % kPageSize != 0 || end % kPageSize != 0) {
      return std::unexpected(InvalidArgument{
          fmt::format("region [{:#x}, {:#x}) is not page-aligned", start, end)});
    }
    if (i > 0 && sorted[i - 1].end > r.start) {
      return std::unexpected(InvalidArgument{fmt::format(
          "regions [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap", sorted[i - 1].start.value(),
          sorted[i - 1].end.value(), start, end)});
    }
  }
  return sorted;
}

}  // namespace

unsigned default_layout_order(std::uint64_t tracked_pages) {
  for (unsigned order = 4; order < 8; ++order) {
    if (tracked_pages <= cell_count(order)) return order;
  }
  return 8;
}

Result<AddressLayout> AddressLayout::create(LayoutOptions options) {
  if (options.order > kMaxLayoutOrder) {
    return std::unexpected(InvalidArgument{fmt::format(
        "grid order {} is above the maximum {} for a layout", options.order, kMaxLayoutOrder)});
  }
  if (!(options.growth_slack >= 0.0 && options.growth_slack <= 4.0)) {
    return std::unexpected(InvalidArgument{"growth slack must be between 0 and 4"});
  }
  AddressLayout layout(options);
  layout.order_ = options.order;
  return layout;
}

const AddressLayout::Window* AddressLayout::window_of(std::uint64_t address) const {
  auto it = std::upper_bound(windows_.begin(), windows_.end(), address,
                             [](std::uint64_t a, const Window& w) { return a < w.base; });
  if (it == windows_.begin()) return nullptr;
  --it;
  return address < it->end() ? &*it : nullptr;
}

// Gives the new pages [base, base + pages) slots at the end of the line, with slack up to
// next_base (the next address that already has, or is about to get, a slot).
void AddressLayout::append_run(std::uint64_t base, std::uint64_t pages, std::uint64_t next_base) {
  const double wanted = std::ceil(static_cast<double>(pages) * options_.growth_slack);
  const std::uint64_t room = (next_base - base) / kPageSize - pages;
  const std::uint64_t slack = std::min(room, static_cast<std::uint64_t>(wanted));
  // The window that ends the line, if this run continues it in address space, grows in place.
  Window* last = nullptr;
  for (Window& w : windows_) {
    if (w.first + w.pages == line_pages_) last = &w;
  }
  if (last != nullptr && last->end() == base) {
    last->pages += pages + slack;
  } else {
    const Window window{.base = base, .first = line_pages_, .pages = pages + slack};
    windows_.insert(std::upper_bound(windows_.begin(), windows_.end(), base,
                                     [](std::uint64_t a, const Window& w) { return a < w.base; }),
                    window);
  }
  line_pages_ += pages + slack;
}

void AddressLayout::rebuild_slot_index() {
  by_slot_ = windows_;
  std::sort(by_slot_.begin(), by_slot_.end(),
            [](const Window& a, const Window& b) { return a.first < b.first; });
  compute_held_pages();
}

Result<LayoutUpdate> AddressLayout::update(std::span<const VirtRange> regions) {
  auto sorted = validated(regions);
  if (!sorted) return std::unexpected(std::move(sorted.error()));

  // The pages of the regions that have no slot yet, as maximal runs in address order.
  struct Run {
    std::uint64_t base;
    std::uint64_t pages;
  };
  std::vector<Run> runs;
  auto add_run = [&](std::uint64_t from, std::uint64_t to) {
    if (!runs.empty() && runs.back().base + runs.back().pages * kPageSize == from) {
      runs.back().pages += (to - from) / kPageSize;
    } else {
      runs.push_back({from, (to - from) / kPageSize});
    }
  };
  for (const VirtRange& region : *sorted) {
    std::uint64_t cursor = region.start.value();
    const std::uint64_t end = region.end.value();
    auto it = std::upper_bound(windows_.begin(), windows_.end(), cursor,
                               [](std::uint64_t a, const Window& w) { return a < w.base; });
    if (it != windows_.begin() && std::prev(it)->end() > cursor) --it;
    for (; cursor < end && it != windows_.end() && it->base < end; ++it) {
      if (it->base > cursor) add_run(cursor, it->base);
      cursor = std::max(cursor, it->end());
    }
    if (cursor < end) add_run(cursor, end);
  }

  LayoutUpdate result;
  // The common case (re-reading an unchanged layout every interval) costs no recomputation.
  if (runs.empty() && *sorted == live_ && order_ != 0) return result;
  std::vector<Window> windows_before = windows_;
  const std::uint64_t line_before = line_pages_;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::uint64_t run_end = runs[i].base + runs[i].pages * kPageSize;
    auto next = std::upper_bound(windows_.begin(), windows_.end(), runs[i].base,
                                 [](std::uint64_t a, const Window& w) { return a < w.base; });
    std::uint64_t next_base = next == windows_.end() ? kTopOfAddressSpace : next->base;
    if (i + 1 < runs.size()) next_base = std::min(next_base, runs[i + 1].base);
    assert(next_base >= run_end);
    (void)run_end;
    append_run(runs[i].base, runs[i].pages, next_base);
  }
  const unsigned order = order_ != 0 || line_pages_ == 0 ? order_ : default_layout_order(line_pages_);
  unsigned shift = cell_shift_;
  while (order != 0 && line_pages_ > (cell_count(order) << shift)) ++shift;
  if (shift > kMaxCellShift) {
    const std::uint64_t line = line_pages_;
    windows_ = std::move(windows_before);
    line_pages_ = line_before;
    return std::unexpected(InvalidArgument{fmt::format(
        "{} pages of address space do not fit a grid of order {} (at most 2^{} pages per cell)",
        line, order, kMaxCellShift)});
  }
  result.windows_added = static_cast<unsigned>(windows_.size() - windows_before.size());
  result.pages_added = line_pages_ - line_before;
  result.rescaled = shift != cell_shift_;
  order_ = order;
  cell_shift_ = shift;
  live_ = std::move(*sorted);
  tracked_pages_ = 0;
  for (const VirtRange& r : live_) tracked_pages_ += r.pages();
  rebuild_slot_index();
  return result;
}

void AddressLayout::compact() {
  windows_.clear();
  line_pages_ = 0;
  for (std::size_t i = 0; i < live_.size(); ++i) {
    const std::uint64_t next = i + 1 < live_.size() ? live_[i + 1].start.value() : kTopOfAddressSpace;
    append_run(live_[i].start.value(), live_[i].pages(), next);
  }
  cell_shift_ = 0;
  while (line_pages_ > (cell_count(order_) << cell_shift_)) ++cell_shift_;
  rebuild_slot_index();
}

std::optional<std::uint64_t> AddressLayout::slot_of(VirtAddr address) const {
  const Window* w = window_of(address.value());
  if (w == nullptr) return std::nullopt;
  return w->first + (address.value() - w->base) / kPageSize;
}

std::optional<std::uint64_t> AddressLayout::index_of(VirtAddr address) const {
  auto slot = slot_of(address);
  if (!slot || order_ == 0) return std::nullopt;
  return *slot >> cell_shift_;
}

std::optional<Cell> AddressLayout::cell_of(VirtAddr address) const {
  auto d = index_of(address);
  if (!d) return std::nullopt;
  return hilbert_d2xy(order_, *d);
}

std::vector<AddressLayout::SlotRun> AddressLayout::slot_runs_of(std::span<const VirtRange> ranges) const {
  std::vector<SlotRun> out;
  for (const VirtRange& r : ranges) {
    const std::uint64_t start = r.start.value() & ~(kPageSize - 1);
    const std::uint64_t end = r.end.value();
    auto it = std::upper_bound(windows_.begin(), windows_.end(), start,
                               [](std::uint64_t a, const Window& w) { return a < w.base; });
    if (it != windows_.begin() && std::prev(it)->end() > start) --it;
    for (; it != windows_.end() && it->base < end; ++it) {
      const std::uint64_t from = std::max(start, it->base);
      const std::uint64_t to = std::min(end, it->end());
      if (from >= to) continue;
      out.push_back({it->first + (from - it->base) / kPageSize, (to - from + kPageSize - 1) / kPageSize});
    }
  }
  return out;
}

std::vector<VirtRange> AddressLayout::ranges_of_slots(std::uint64_t first, std::uint64_t count) const {
  std::vector<VirtRange> out;
  if (count == 0 || first >= line_pages_) return out;
  const std::uint64_t last = first + std::min(count, line_pages_ - first);  // exclusive
  auto it = std::upper_bound(by_slot_.begin(), by_slot_.end(), first,
                             [](std::uint64_t s, const Window& w) { return s < w.first; });
  if (it != by_slot_.begin()) --it;
  for (; it != by_slot_.end() && it->first < last; ++it) {
    const std::uint64_t from = std::max(first, it->first);
    const std::uint64_t to = std::min(last, it->first + it->pages);
    if (from >= to) continue;
    const std::uint64_t lo = it->base + (from - it->first) * kPageSize;
    const std::uint64_t hi = it->base + (to - it->first) * kPageSize;
    // Only the part that is tracked now.
    auto live = std::upper_bound(live_.begin(), live_.end(), lo,
                                 [](std::uint64_t a, const VirtRange& r) { return a < r.start.value(); });
    if (live != live_.begin() && std::prev(live)->end.value() > lo) --live;
    for (; live != live_.end() && live->start.value() < hi; ++live) {
      const VirtRange part{VirtAddr(std::max(lo, live->start.value())),
                           VirtAddr(std::min(hi, live->end.value()))};
      if (!out.empty() && out.back().end == part.start) {
        out.back().end = part.end;
      } else {
        out.push_back(part);
      }
    }
  }
  return out;
}

std::vector<VirtRange> AddressLayout::ranges_of(Cell cell) const {
  assert(cell.x < side() && cell.y < side());
  if (order_ == 0) return {};
  const std::uint64_t d = hilbert_xy2d(order_, cell.x, cell.y);
  return ranges_of_slots(d << cell_shift_, pages_per_cell());
}

namespace {

void reset_counts(unsigned order, CellCounts& counts) {
  if (counts.order != order || counts.cells.size() != cell_count(order)) {
    counts.order = order;
    counts.cells.assign(cell_count(order), 0);
    counts.ignored_pages = 0;
  }
}

}  // namespace

void AddressLayout::count_pages(std::span<const VirtAddr> pages, CellCounts& counts) const {
  reset_counts(order_, counts);
  if (order_ == 0) {
    counts.ignored_pages += pages.size();
    return;
  }
  // Chunks: look up slots (the last window is cached: input is usually sorted), convert the
  // indices in one batch call, then scatter.
  constexpr std::size_t kChunk = 1024;
  std::array<std::uint64_t, kChunk> indices;
  std::array<Cell, kChunk> cells;
  const Window* cached = nullptr;
  const std::uint32_t side_shift = order_;
  for (std::size_t begin = 0; begin < pages.size(); begin += kChunk) {
    const std::size_t n = std::min(kChunk, pages.size() - begin);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t a = pages[begin + i].value();
      if (cached == nullptr || a < cached->base || a >= cached->end()) {
        cached = window_of(a);
        if (cached == nullptr) {
          ++counts.ignored_pages;
          continue;
        }
      }
      indices[kept++] = (cached->first + (a - cached->base) / kPageSize) >> cell_shift_;
    }
    hilbert_d2xy_batch(order_, std::span(indices).first(kept), std::span(cells).first(kept));
    for (std::size_t i = 0; i < kept; ++i) {
      ++counts.cells[(std::size_t{cells[i].y} << side_shift) | cells[i].x];
    }
  }
}

// Adds the slots [first_slot, first_slot + slots) to their cells, indexed by Hilbert index.
void AddressLayout::add_to_cells(std::uint64_t first_slot, std::uint64_t slots,
                                 std::vector<std::uint32_t>& by_index) const {
  const std::uint64_t per_cell = pages_per_cell();
  std::uint64_t slot = first_slot;
  const std::uint64_t end = first_slot + slots;
  while (slot < end) {
    const std::uint64_t d = slot >> cell_shift_;
    const std::uint64_t cell_end = std::min(end, (d + 1) * per_cell);
    by_index[d] += static_cast<std::uint32_t>(cell_end - slot);
    slot = cell_end;
  }
}

void AddressLayout::count_ranges(std::span<const VirtRange> ranges, CellCounts& counts) const {
  reset_counts(order_, counts);
  if (order_ == 0) {
    for (const VirtRange& r : ranges) counts.ignored_pages += r.pages();
    return;
  }
  const std::span<const std::uint32_t> grid_index = hilbert_row_major_table(order_);
  for (const VirtRange& range : ranges) {
    std::uint64_t cursor = range.start.value() & ~(kPageSize - 1);
    const std::uint64_t end = range.end.value();
    while (cursor < end) {
      const Window* w = window_of(cursor);
      if (w == nullptr) {
        // Skip to the next window (or the end of the range).
        auto next = std::upper_bound(windows_.begin(), windows_.end(), cursor,
                                     [](std::uint64_t a, const Window& win) { return a < win.base; });
        const std::uint64_t to = next == windows_.end() ? end : std::min(end, next->base);
        counts.ignored_pages += (to - cursor + kPageSize - 1) / kPageSize;
        cursor = to;
        continue;
      }
      const std::uint64_t to = std::min(end, w->end());
      std::uint64_t slot = w->first + (cursor - w->base) / kPageSize;
      const std::uint64_t slot_end = slot + (to - cursor + kPageSize - 1) / kPageSize;
      while (slot < slot_end) {
        const std::uint64_t d = slot >> cell_shift_;
        const std::uint64_t cell_end = std::min(slot_end, (d + 1) << cell_shift_);
        std::uint32_t& count = counts.cells[grid_index[d]];
        // Saturates: overlapping ranges could otherwise wrap a cell's count.
        count = static_cast<std::uint32_t>(
            std::min<std::uint64_t>(std::uint64_t{count} + (cell_end - slot), UINT32_MAX));
        slot = cell_end;
      }
      cursor = to;
    }
  }
}

void AddressLayout::compute_held_pages() {
  held_.clear();
  if (order_ == 0) return;
  std::vector<std::uint32_t> by_index(cell_count(order_), 0);
  for (const VirtRange& r : live_) {
    std::uint64_t cursor = r.start.value();
    // Every live page has a slot (update gives one to each new page).
    while (cursor < r.end.value()) {
      const Window* w = window_of(cursor);
      assert(w != nullptr);
      const std::uint64_t to = std::min(r.end.value(), w->end());
      add_to_cells(w->first + (cursor - w->base) / kPageSize, (to - cursor) / kPageSize, by_index);
      cursor = to;
    }
  }
  held_.assign(by_index.size(), 0);
  static_assert(kMaxLayoutOrder <= kMaxHilbertTableOrder);
  const std::span<const std::uint32_t> grid_index = hilbert_row_major_table(order_);
  for (std::size_t d = 0; d < by_index.size(); ++d) held_[grid_index[d]] = by_index[d];
}

DensityMap AddressLayout::density(const CellCounts& counts) const {
  DensityMap map(order_);
  if (counts.order != order_ || counts.cells.size() != map.cells.size() ||
      held_.size() != map.cells.size()) {
    return map;
  }
  const auto& held = held_;
  for (std::size_t i = 0; i < map.cells.size(); ++i) {
    if (counts.cells[i] == 0 || held[i] == 0) continue;
    map.cells[i] = std::min(1.0f, static_cast<float>(counts.cells[i]) / static_cast<float>(held[i]));
  }
  return map;
}

}  // namespace haywire::glass
