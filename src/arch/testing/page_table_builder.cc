#include "arch/testing/page_table_builder.h"

#include <cstring>
#include <string>

namespace haywire::arch::testing {

PageTableBuilder::PageTableBuilder(std::span<std::byte> ram, int levels, PhysAddr table_area)
    : ram_(ram), levels_(levels), first_(table_area), next_(table_area) {
  if (levels != 4 && levels != 5) throw std::invalid_argument("levels must be 4 or 5");
  if (table_area.value() % kPage4K != 0) throw std::invalid_argument("table area must be 4 KiB aligned");
  root_ = new_table();
}

PhysAddr PageTableBuilder::new_table() {
  const PhysAddr table = next_;
  if (table.value() + kPage4K > ram_.size()) throw std::length_error("fake RAM too small for another page table");
  std::memset(ram_.data() + table.value(), 0, kPage4K);
  next_ = next_ + kPage4K;
  return table;
}

std::uint64_t PageTableBuilder::entry(PhysAddr addr) const {
  if (addr.value() + 8 > ram_.size()) throw std::out_of_range("entry outside fake RAM");
  std::uint64_t v = 0;
  std::memcpy(&v, ram_.data() + addr.value(), 8);
  return v;
}

void PageTableBuilder::set_entry(PhysAddr addr, std::uint64_t value) {
  if (addr.value() + 8 > ram_.size()) throw std::out_of_range("entry outside fake RAM");
  std::memcpy(ram_.data() + addr.value(), &value, 8);
}

PhysAddr PageTableBuilder::table_for(VirtAddr va, int level, std::uint64_t table_bits) {
  PhysAddr table = root_;
  for (int l = levels_; l > level; --l) {
    const PhysAddr slot = table + std::uint64_t{level_index(va.value(), l)} * 8;
    std::uint64_t e = entry(slot);
    if ((e & pte::kPresent) == 0) {
      const PhysAddr child = new_table();
      e = child.value() | table_bits;
      set_entry(slot, e);
    } else if (l <= 3 && (e & pte::kPageSize) != 0) {
      throw std::logic_error("a large page is in the way at level " + std::to_string(l));
    }
    table = PhysAddr(e & 0x000f'ffff'ffff'f000ull);
  }
  return table;
}

PhysAddr PageTableBuilder::entry_addr(VirtAddr va, int level) {
  return table_for(va, level) + std::uint64_t{level_index(va.value(), level)} * 8;
}

void PageTableBuilder::map(VirtAddr va, PhysAddr pa, std::uint64_t page_size, std::uint64_t leaf_bits,
                           std::uint64_t table_bits) {
  int level = 1;
  if (page_size == kPage2M) level = 2;
  else if (page_size == kPage1G) level = 3;
  else if (page_size != kPage4K) throw std::invalid_argument("page size must be 4K, 2M or 1G");
  if (va.value() % page_size != 0 || pa.value() % page_size != 0) throw std::invalid_argument("unaligned mapping");
  const PhysAddr table = table_for(va, level, table_bits);
  std::uint64_t e = pa.value() | pte::kPresent | leaf_bits;
  if (level > 1) e |= pte::kPageSize;
  set_entry(table + std::uint64_t{level_index(va.value(), level)} * 8, e);
}

void PageTableBuilder::map_range(VirtAddr va, PhysAddr pa, std::uint64_t bytes, std::uint64_t page_size,
                                 std::uint64_t leaf_bits) {
  for (std::uint64_t off = 0; off < bytes; off += page_size) map(va + off, pa + off, page_size, leaf_bits);
}

}  // namespace haywire::arch::testing
