// A software TLB: successful translations keyed by (CR3, 4 KiB virtual page).
//
// The guest keeps changing its page tables and nothing tells the host, so a cached answer can
// be stale: invalidate explicitly (everything, or one CR3 after a process exits) or ask the
// AddressSpace for a fresh walk. Faults are never cached: an unmapped page may be mapped a
// moment later, and a fresh walk of it is cheap.
//
// Two-way set-associative and fixed-size: memory is bounded whatever the guest does, and a
// lookup is a hash and two compares within one 64-byte cache line, with no allocation. (A
// direct-mapped table of the same size kept only ~64% of a 60,000-page kernel working set;
// two ways in one line cost nothing extra.) Not thread-safe: one cache per thread (or a lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "haywire/arch/paging.h"
#include "haywire/base/types.h"

namespace haywire::arch {

class TranslationCache {
 public:
  // `capacity` entries, rounded up to a power of two (32 bytes each; default 2 MiB).
  explicit TranslationCache(std::size_t capacity = 1 << 16);

  // True and `out` filled (va, pa with the page offset, page_size, flags) on a hit.
  bool lookup(Cr3 cr3, VirtAddr va, Translation& out) {
    const std::uint64_t vpn = va.value() >> kPageShift;
    const std::uint64_t tag = tag_of(cr3);
    const Set& set = sets_[set_of(tag, vpn)];
    for (const Entry& e : set.ways) {
      if (e.tag == tag && e.vpn == vpn && e.generation == generation_) {
        ++hits_;
        out.va = va;
        out.pa = PhysAddr(e.page | (va.value() & (kPageSize - 1)));
        out.page_size = std::uint64_t{1} << e.size_shift;
        out.flags = PageFlags(e.flags);
        out.fault.reset();
        return true;
      }
    }
    ++misses_;
    return false;
  }
  // Remembers a mapped translation (faults are ignored).
  void insert(Cr3 cr3, const Translation& t);

  // Forgets everything: O(1).
  void invalidate_all();
  // Forgets every page of one address space (PCID bits of `cr3` are ignored): O(capacity).
  void invalidate(Cr3 cr3);

  [[nodiscard]] std::size_t capacity() const { return sets_.size() * 2; }
  [[nodiscard]] std::uint64_t hits() const { return hits_; }
  [[nodiscard]] std::uint64_t misses() const { return misses_; }

 private:
  struct Entry {
    std::uint64_t tag = 0;    // table base of CR3 | 1 (0: never filled)
    std::uint64_t vpn = 0;    // virtual address >> 12
    std::uint64_t page = 0;   // guest-physical address of this 4 KiB piece of the page
    std::uint32_t generation = 0;
    std::uint8_t size_shift = 0;  // 12, 21 or 30
    std::uint8_t flags = 0;
  };
  static_assert(sizeof(Entry) == 32);
  // Both ways of a set share one cache line; way 0 holds the most recently inserted entry.
  struct alignas(64) Set {
    Entry ways[2];
  };
  static_assert(sizeof(Set) == 64);

  // CR3 bits 0..11 hold PCID or PWT/PCD, bits 52..63 the no-flush and LAM controls: none
  // changes which tables are walked. Bit 0 of the tag marks the entry as used.
  static std::uint64_t tag_of(Cr3 cr3) { return (cr3.value() & 0x000f'ffff'ffff'f000ull) | 1; }
  [[nodiscard]] std::size_t set_of(std::uint64_t tag, std::uint64_t vpn) const {
    // Fibonacci hashing mixes the page number with the address space so that the same kernel
    // page in two processes does not always land in the same set.
    const std::uint64_t h = (vpn ^ (tag >> 12) * 0x9e37'79b9'7f4a'7c15ull) * 0x9e37'79b9'7f4a'7c15ull;
    return static_cast<std::size_t>(h >> shift_);
  }

  std::vector<Set> sets_;
  unsigned shift_ = 0;  // 64 - log2(number of sets)
  std::uint32_t generation_ = 1;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace haywire::arch
