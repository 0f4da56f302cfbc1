#include "haywire/arch/walker.h"

#include <algorithm>
#include <cstring>

namespace haywire::arch {
namespace {

// Reads the 8-byte entry at `addr`; false if it is not guest RAM. Entries are naturally
// aligned (table base 4 KiB aligned + index * 8), so an entry never straddles a RAM hole.
bool read_entry(const guest::GuestRam& ram, PhysAddr addr, std::uint64_t& entry) {
  auto bytes = ram.read_pa(addr, sizeof entry);
  if (!bytes) return false;
  std::memcpy(&entry, bytes->data(), sizeof entry);  // x86 guests and hosts: little-endian
  return true;
}

}  // namespace

Translation walk(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3, VirtAddr va) {
  Translation t;
  t.va = va;
  if (!mode.is_canonical(va)) {
    t.fault = Fault{.kind = FaultKind::kNonCanonical};
    return t;
  }
  const std::uint64_t v = va.value();
  std::uint64_t table = mode.root(cr3).value();
  bool writable = true, user = true, no_execute = false;
  // At most `levels` iterations: every level reads exactly one entry, whatever the guest wrote.
  for (int level = mode.levels(); level >= 1; --level) {
    const PhysAddr entry_addr(table + std::uint64_t{level_index(v, level)} * 8);
    std::uint64_t e = 0;
    if (!read_entry(ram, entry_addr, e)) {
      t.fault = Fault{.kind = FaultKind::kTableOutsideRam, .level = level, .entry_addr = PhysAddr(table)};
      return t;
    }
    if ((e & pte::kPresent) == 0) {
      t.fault = Fault{.kind = FaultKind::kNotPresent, .level = level, .entry_addr = entry_addr, .entry = e};
      return t;
    }
    const bool large = (level == 2 || level == 3) && (e & pte::kPageSize) != 0;
    if ((e & mode.reserved_mask(level, large)) != 0) {
      t.fault = Fault{.kind = FaultKind::kReservedBit, .level = level, .entry_addr = entry_addr, .entry = e};
      return t;
    }
    writable = writable && (e & pte::kWritable) != 0;
    user = user && (e & pte::kUser) != 0;
    no_execute = no_execute || (mode.nx_enabled() && (e & pte::kNoExecute) != 0);
    if (large || level == 1) {
      const std::uint64_t size = level_span(level);
      t.page_size = size;
      t.pa = PhysAddr((e & mode.address_mask() & ~(size - 1)) | (v & (size - 1)));
      std::uint8_t bits = PageFlags::kPresent;
      if (writable) bits |= PageFlags::kWritable;
      if (user) bits |= PageFlags::kUser;
      if (no_execute) bits |= PageFlags::kNoExecute;
      if ((e & pte::kAccessed) != 0) bits |= PageFlags::kAccessed;
      if ((e & pte::kDirty) != 0) bits |= PageFlags::kDirty;
      if ((e & pte::kGlobal) != 0) bits |= PageFlags::kGlobal;
      t.flags = PageFlags(bits);
      return t;
    }
    table = e & mode.address_mask();
  }
  return t;  // unreachable: level 1 is always a leaf
}

void walk_batch(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3, std::span<const VirtAddr> vas,
                std::span<Translation> out) {
  const std::size_t n = std::min(vas.size(), out.size());
  for (std::size_t i = 0; i < n; ++i) {
    // Reuse the previous walk for another address in the same mapped page.
    if (i > 0 && out[i - 1].mapped()) {
      const Translation& prev = out[i - 1];
      const std::uint64_t mask = ~(prev.page_size - 1);
      if ((vas[i].value() & mask) == (prev.va.value() & mask)) {
        out[i] = prev;
        out[i].va = vas[i];
        out[i].pa = PhysAddr((prev.pa.value() & mask) | (vas[i].value() & ~mask));
        continue;
      }
    }
    out[i] = walk(ram, mode, cr3, vas[i]);
  }
}

}  // namespace haywire::arch
