// One guest address space: guest RAM + paging mode + CR3, optionally with a translation
// cache. This is what later layers (processes, beacons) read guest-virtual memory through.
//
//   arch::AddressSpace kernel(ram, mode, cr3, &cache);
//   std::array<std::byte, 64> buf;
//   auto r = kernel.read(VirtAddr(0xffffffff81000000), buf);
//   if (!r.complete()) ... r.bytes_read bytes are valid, r.fault says where and why it stopped
//
// Holds references: the GuestRam and the cache must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "haywire/arch/paging.h"
#include "haywire/arch/translation_cache.h"
#include "haywire/base/types.h"
#include "haywire/guest/ram.h"

namespace haywire::arch {

// kCached consults and fills the cache (if any); kFresh walks the tables as they are now and
// leaves the cache alone.
enum class Lookup { kCached, kFresh };

struct ReadFault {
  VirtAddr va;  // first byte that could not be read
  Fault fault;  // why: a translation fault, or kPageOutsideRam
};

struct ReadResult {
  std::uint64_t bytes_read = 0;     // bytes [0, bytes_read) of the buffer are valid
  std::optional<ReadFault> fault;   // set when bytes_read < the requested length
  [[nodiscard]] bool complete() const { return !fault.has_value(); }
};

class AddressSpace {
 public:
  AddressSpace(const guest::GuestRam& ram, PagingMode mode, Cr3 cr3, TranslationCache* cache = nullptr)
      : ram_(&ram), mode_(mode), cr3_(cr3), cache_(cache) {}

  [[nodiscard]] Translation translate(VirtAddr va, Lookup lookup = Lookup::kCached) const;
  // Many addresses in one call: `out` gets one Translation per address, in order.
  void translate_batch(std::span<const VirtAddr> vas, std::span<Translation> out,
                       Lookup lookup = Lookup::kCached) const;
  [[nodiscard]] std::vector<Translation> translate_batch(std::span<const VirtAddr> vas,
                                                         Lookup lookup = Lookup::kCached) const;

  // Copies guest-virtual [va, va + out.size()) into `out`, page by page, stopping at the first
  // byte that cannot be read. Never pretends: the bytes before the fault are exact, the rest
  // of `out` is left untouched. Wraps at the top of the address space are faults.
  ReadResult read(VirtAddr va, std::span<std::byte> out, Lookup lookup = Lookup::kCached) const;

  [[nodiscard]] const PagingMode& mode() const { return mode_; }
  [[nodiscard]] Cr3 cr3() const { return cr3_; }
  [[nodiscard]] const guest::GuestRam& ram() const { return *ram_; }
  [[nodiscard]] TranslationCache* cache() const { return cache_; }

 private:
  const guest::GuestRam* ram_;
  PagingMode mode_;
  Cr3 cr3_;
  TranslationCache* cache_;
};

}  // namespace haywire::arch
