#include "haywire/base/ram_layout.h"

#include <algorithm>

#include <fmt/format.h>

namespace haywire {

Result<RamLayout> RamLayout::make(std::vector<RamRegion> regions, std::uint64_t file_size) {
  std::sort(regions.begin(), regions.end(),
            [](const RamRegion& a, const RamRegion& b) { return a.start < b.start; });
  RamLayout layout;
  for (const RamRegion& r : regions) {
    if (r.size == 0) return fail(InvalidArgument{"RAM layout has an empty region"});
    if (r.start.value() + r.size < r.start.value())
      return fail(InvalidArgument{fmt::format("RAM region at 0x{:x} wraps around", r.start.value())});
    if (r.file_offset + r.size < r.file_offset || r.file_offset + r.size > file_size)
      return fail(InvalidArgument{fmt::format(
          "RAM region 0x{:x}+0x{:x} at file offset 0x{:x} lies past the end of the {}-byte file",
          r.start.value(), r.size, r.file_offset, file_size)});
    if (!layout.regions_.empty()) {
      RamRegion& last = layout.regions_.back();
      if (r.start < last.end())
        return fail(InvalidArgument{fmt::format("RAM regions overlap at 0x{:x}", r.start.value())});
      if (r.start == last.end() && r.file_offset == last.file_offset + last.size) {
        last.size += r.size;
        continue;
      }
    }
    layout.regions_.push_back(r);
  }
  return layout;
}

RamLayout RamLayout::identity(std::uint64_t file_size) {
  RamLayout layout;
  if (file_size != 0) layout.regions_.push_back(RamRegion{PhysAddr(0), file_size, 0});
  return layout;
}

Result<std::uint64_t> RamLayout::file_offset(PhysAddr addr, std::uint64_t len) const {
  // Regions are few (2-6); a linear scan beats a binary search at this size.
  for (const RamRegion& r : regions_) {
    if (addr >= r.start && addr < r.end()) {
      std::uint64_t into = addr - r.start;
      if (len <= r.size - into) return r.file_offset + into;
      break;
    }
  }
  return fail(InvalidAddress{addr.value(), len, end()});
}

std::optional<PhysAddr> RamLayout::phys_of_offset(std::uint64_t offset) const {
  for (const RamRegion& r : regions_)
    if (offset >= r.file_offset && offset - r.file_offset < r.size)
      return r.start + (offset - r.file_offset);
  return std::nullopt;
}

std::uint64_t RamLayout::end() const { return regions_.empty() ? 0 : regions_.back().end().value(); }

std::uint64_t RamLayout::total() const {
  std::uint64_t sum = 0;
  for (const RamRegion& r : regions_) sum += r.size;
  return sum;
}

}  // namespace haywire
