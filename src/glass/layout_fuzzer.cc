// Fuzz target: AddressLayout under arbitrary sequences of region sets (the regions come from a
// process's /proc/PID/maps, which the target controls) and compactions. Checks that a rejected
// update changes nothing, and that on success every tracked page has a cell whose inverse
// contains it and the per-cell page counts add up to the tracked pages.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "haywire/glass/layout.h"

namespace {

using haywire::VirtAddr;
using haywire::glass::AddressLayout;
using haywire::glass::VirtRange;

struct Reader {
  const std::uint8_t* data;
  std::size_t size;
  template <class T>
  T take() {
    T v{};
    const std::size_t n = std::min(sizeof(T), size);
    std::memcpy(&v, data, n);
    data += n;
    size -= n;
    return v;
  }
};

bool contains(const std::vector<VirtRange>& ranges, std::uint64_t address) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const VirtRange& r) {
    return address >= r.start.value() && address < r.end.value();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  const auto header = in.take<std::uint8_t>();
  // Orders up to 6 (4096 cells) keep each run cheap; the logic does not depend on the order.
  auto layout = AddressLayout::create({.order = 1u + header % 6u, .growth_slack = (header >> 4) / 8.0});
  if (!layout) __builtin_trap();
  for (int step = 0; step < 16 && in.size > 0; ++step) {
    const auto op = in.take<std::uint8_t>();
    if (op % 8 == 0) {
      layout->compact();
      continue;
    }
    std::vector<VirtRange> regions;
    const unsigned count = op % 8;
    for (unsigned i = 0; i < count; ++i) {
      // Mostly small, page-aligned, nearby regions; the top bits of the flags make hostile ones.
      const auto flags = in.take<std::uint8_t>();
      std::uint64_t start = std::uint64_t{in.take<std::uint16_t>()} << 12;
      std::uint64_t end = start + (std::uint64_t{in.take<std::uint8_t>()} << 12);
      if (flags & 0x80) start = in.take<std::uint64_t>();
      if (flags & 0x40) end = in.take<std::uint64_t>();
      regions.push_back({VirtAddr(start), VirtAddr(end)});
    }
    const std::uint64_t line_before = layout->line_pages();
    const std::size_t regions_before = layout->regions().size();
    auto result = layout->update(regions);
    if (!result) {
      if (layout->line_pages() != line_before || layout->regions().size() != regions_before) __builtin_trap();
      continue;
    }
    if (layout->order() != 0 &&
        layout->line_pages() > (std::uint64_t{1} << (2 * layout->order())) * layout->pages_per_cell()) {
      __builtin_trap();
    }
    // Probe the first, middle and last page of every region.
    for (const VirtRange& r : layout->regions()) {
      for (std::uint64_t a : {r.start.value(), r.start.value() + (r.pages() / 2) * 4096, r.end.value() - 4096}) {
        auto cell = layout->cell_of(VirtAddr(a));
        if (!cell || !contains(layout->ranges_of(*cell), a)) __builtin_trap();
      }
    }
    std::uint64_t held = 0;
    for (std::uint32_t v : layout->held_pages()) held += v;
    if (held != layout->tracked_pages()) __builtin_trap();
  }
  return 0;
}
