// Address layout: where each tracked page of a process sits on the Hilbert grid.
//
// The tracked address space (writable regions, holes between them collapsed) is laid along a
// "line" of page slots; slot s belongs to cell d = s / pages_per_cell (Hilbert index d at the
// grid order), so consecutive pages fill a cell, then walk to the adjacent cell.
//
// Stability rule (the picture must not jump while regions come and go):
//  - The layout is a set of windows; a window maps an address span [base, base + n pages)
//    linearly onto line slots [first, first + n). Windows never overlap, in addresses or slots.
//  - An address that has a slot keeps it until compact(): a region that shrinks, is split by
//    mprotect, is unmapped and mapped again at the same place, or moves back, is drawn where it
//    was. An unmapped region's slots stay reserved (drawn as background, excluded from density).
//  - Addresses never seen before get new windows appended at the end of the line, one per
//    maximal run of new pages, in address order. A run that directly continues the window that
//    ends the line extends it instead (growth in place).
//  - Each new window also reserves `growth_slack` of its size past its end (up to the next known
//    window), so a heap that grows upward (brk) keeps growing in place; growth beyond the slack
//    appears as a new window at the end of the line ("else move": the new part moves, the old
//    part stays).
//  - pages_per_cell is a power of two and only grows (doubles) when the line outgrows the grid,
//    so the scale changes rarely; compact() repacks the live regions in address order and picks
//    the smallest scale again.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"
#include "haywire/glass/density.h"
#include "haywire/glass/hilbert.h"

namespace haywire::glass {

// A page-aligned [start, end) range of virtual addresses.
struct VirtRange {
  VirtAddr start;
  VirtAddr end;
  [[nodiscard]] std::uint64_t bytes() const { return end - start; }
  [[nodiscard]] std::uint64_t pages() const { return (end - start) / kPageSize; }
  friend bool operator==(const VirtRange&, const VirtRange&) = default;
};

// Largest grid a layout draws on (4096 x 4096 cells; the spec's maximum order is 12).
inline constexpr unsigned kMaxLayoutOrder = 12;

// The order used when none is given: the smallest in [4, 8] at which every page has its own
// cell, else 8 (the spec's default: 65536 cells, what reconstruction is tuned for).
unsigned default_layout_order(std::uint64_t tracked_pages);

struct LayoutOptions {
  unsigned order = 0;           // 1..kMaxLayoutOrder; 0 = default_layout_order() at first update
  double growth_slack = 0.125;  // fraction of a new window's size reserved past its end
};

struct LayoutUpdate {
  unsigned windows_added = 0;
  std::uint64_t pages_added = 0;  // line slots added (new pages + slack)
  bool rescaled = false;          // pages_per_cell changed: every cell's contents changed
};

// Written pages counted per cell, row-major like DensityMap (index y * side + x).
struct CellCounts {
  unsigned order = 0;
  std::vector<std::uint32_t> cells;
  std::uint64_t ignored_pages = 0;  // pages outside every window (not tracked)
};

class AddressLayout {
 public:
  // InvalidArgument for an order above kMaxLayoutOrder or a slack outside [0, 4].
  static Result<AddressLayout> create(LayoutOptions options = {});

  // Brings the layout up to date with the regions tracked now (any order). InvalidArgument if a
  // range is empty, reversed, not page-aligned or overlaps another; the layout is then unchanged.
  Result<LayoutUpdate> update(std::span<const VirtRange> regions);
  // Forgets every reservation and lays the live regions out afresh, in address order.
  void compact();

  // 0 until the first update that tracks any page (when order was left to the default).
  [[nodiscard]] unsigned order() const { return order_; }
  [[nodiscard]] std::uint32_t side() const { return std::uint32_t{1} << order_; }
  [[nodiscard]] std::uint64_t pages_per_cell() const { return std::uint64_t{1} << cell_shift_; }
  // Slots on the line, reserved ones included (<= 4^order * pages_per_cell).
  [[nodiscard]] std::uint64_t line_pages() const { return line_pages_; }
  [[nodiscard]] std::uint64_t tracked_pages() const { return tracked_pages_; }
  [[nodiscard]] std::span<const VirtRange> regions() const { return live_; }

  // The slot / Hilbert index / cell of the page holding `address`; nullopt if it has no slot.
  [[nodiscard]] std::optional<std::uint64_t> slot_of(VirtAddr address) const;
  [[nodiscard]] std::optional<std::uint64_t> index_of(VirtAddr address) const;
  [[nodiscard]] std::optional<Cell> cell_of(VirtAddr address) const;

  // The slots of the pages of `ranges` that have one, as runs [first, first + count), each
  // within one window, in the order of `ranges` (not sorted by slot, not merged). A range
  // costs one lookup per window it touches, not one per page.
  struct SlotRun {
    std::uint64_t first = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] std::vector<SlotRun> slot_runs_of(std::span<const VirtRange> ranges) const;

  // The currently tracked address ranges behind slots [first, first + count), in slot order
  // (what a sampling plan on the line arms). Reserved slots of unmapped memory yield nothing.
  [[nodiscard]] std::vector<VirtRange> ranges_of_slots(std::uint64_t first, std::uint64_t count) const;
  // The currently tracked address ranges a cell covers (hover); empty for a background cell.
  // x, y must be < side().
  [[nodiscard]] std::vector<VirtRange> ranges_of(Cell cell) const;

  // Threading: const members may run concurrently; update()/compact() need exclusive access.
  //
  // Adds 1 per page to its cell in `counts` (resized and zeroed if its order differs from the
  // layout's). Pages may repeat or come in any order; sorted input is fastest.
  void count_pages(std::span<const VirtAddr> pages, CellCounts& counts) const;
  // The same for whole ranges (what PAGEMAP_SCAN returns): each page of each range counts once.
  void count_ranges(std::span<const VirtRange> ranges, CellCounts& counts) const;

  // Normalisation: density = written pages in the cell / tracked pages the cell holds now,
  // i.e. the fraction of the cell's memory written (0..1, clamped at 1 when pages repeat).
  // Cells holding no tracked page are 0. Same definition as reconstruct.h's exact_density.
  // `counts` must come from this layout (same order).
  [[nodiscard]] DensityMap density(const CellCounts& counts) const;
  // Tracked pages per cell, row-major (recomputed by update() and compact()).
  [[nodiscard]] std::span<const std::uint32_t> held_pages() const { return held_; }

 private:
  struct Window {
    std::uint64_t base = 0;   // first address
    std::uint64_t first = 0;  // first slot
    std::uint64_t pages = 0;
    [[nodiscard]] std::uint64_t end() const { return base + pages * kPageSize; }
  };

  explicit AddressLayout(LayoutOptions options) : options_(options) {}
  const Window* window_of(std::uint64_t address) const;  // nullptr if none
  void append_run(std::uint64_t base, std::uint64_t pages, std::uint64_t next_base);
  void rebuild_slot_index();  // also recomputes held_
  void compute_held_pages();
  void add_to_cells(std::uint64_t first_slot, std::uint64_t slots, std::vector<std::uint32_t>& by_index) const;

  LayoutOptions options_;
  unsigned order_ = 0;
  unsigned cell_shift_ = 0;  // log2(pages_per_cell)
  std::uint64_t line_pages_ = 0;
  std::uint64_t tracked_pages_ = 0;
  std::vector<Window> windows_;  // sorted by base
  std::vector<Window> by_slot_;  // the same windows sorted by first slot
  std::vector<VirtRange> live_;  // sorted by start
  std::vector<std::uint32_t> held_;  // row-major, 4^order entries
};

}  // namespace haywire::glass
