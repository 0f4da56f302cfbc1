// Writes x86-64 page tables into a fake guest RAM (the writable "guest" view of a
// FakeRamFile), for unit tests, fuzz seeds and benchmarks that need no VM.
//
//   FakeRamFile file(16 << 20);
//   PageTableBuilder pt(file.guest(), 4);             // tables allocated from 1 MiB up
//   pt.map(VirtAddr(0xffffffff81000000), PhysAddr(0x200000), kPage2M, pte::kWritable);
//   auto ram = GuestRam::open(file.path());
//   walk(*ram, PagingMode::four_level(), pt.cr3(), VirtAddr(0xffffffff81000123));
//
// Guest RAM is identity-laid-out (guest-physical = file offset). Intermediate tables get
// present | writable | user so that the leaf's bits decide; hostile layouts are made with
// set_entry() on the tables the builder reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "haywire/arch/paging.h"
#include "haywire/base/types.h"

namespace haywire::arch::testing {

class PageTableBuilder {
 public:
  // Tables are allocated upward from `table_area` (4 KiB aligned); the root is the first.
  PageTableBuilder(std::span<std::byte> ram, int levels, PhysAddr table_area = PhysAddr(1u << 20));

  [[nodiscard]] Cr3 cr3() const { return Cr3(root_.value()); }
  [[nodiscard]] PhysAddr root() const { return root_; }
  [[nodiscard]] int levels() const { return levels_; }
  // One past the last table allocated so far.
  [[nodiscard]] PhysAddr tables_end() const { return next_; }
  [[nodiscard]] std::uint64_t tables_allocated() const { return (next_ - first_) / kPage4K; }

  // Maps one page of `page_size` (4 KiB, 2 MiB or 1 GiB) at `va` (aligned) to `pa`.
  // `leaf_bits` are added to present (and PS for large pages): pte::kWritable, kUser, ...
  // `table_bits` replace the default bits of intermediate entries created on the way.
  void map(VirtAddr va, PhysAddr pa, std::uint64_t page_size, std::uint64_t leaf_bits = pte::kWritable,
           std::uint64_t table_bits = kDefaultTableBits);
  // Maps [va, va + bytes) to [pa, pa + bytes) with pages of `page_size`.
  void map_range(VirtAddr va, PhysAddr pa, std::uint64_t bytes, std::uint64_t page_size,
                 std::uint64_t leaf_bits = pte::kWritable);

  // The table at `level` on the way to `va`, created (with `table_bits`) if missing. Throws
  // if a large page is in the way.
  PhysAddr table_for(VirtAddr va, int level, std::uint64_t table_bits = kDefaultTableBits);
  // Address of the entry for `va` in the table at `level` (the table must exist).
  PhysAddr entry_addr(VirtAddr va, int level);
  [[nodiscard]] std::uint64_t entry(PhysAddr addr) const;
  void set_entry(PhysAddr addr, std::uint64_t value);
  // A fresh zeroed table (for hand-made structures).
  PhysAddr new_table();

  static constexpr std::uint64_t kDefaultTableBits = pte::kPresent | pte::kWritable | pte::kUser;

 private:
  std::span<std::byte> ram_;
  int levels_;
  PhysAddr first_;
  PhysAddr next_;
  PhysAddr root_;
};

}  // namespace haywire::arch::testing
