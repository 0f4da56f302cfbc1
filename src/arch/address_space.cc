#include "haywire/arch/address_space.h"

#include <algorithm>
#include <cstring>

#include "haywire/arch/walker.h"

namespace haywire::arch {

Translation AddressSpace::translate(VirtAddr va, Lookup lookup) const {
  if (cache_ == nullptr || lookup == Lookup::kFresh) return walk(*ram_, mode_, cr3_, va);
  Translation t;
  if (cache_->lookup(cr3_, va, t)) return t;
  t = walk(*ram_, mode_, cr3_, va);
  cache_->insert(cr3_, t);
  return t;
}

void AddressSpace::translate_batch(std::span<const VirtAddr> vas, std::span<Translation> out, Lookup lookup) const {
  if (cache_ == nullptr || lookup == Lookup::kFresh) {
    walk_batch(*ram_, mode_, cr3_, vas, out);
    return;
  }
  const std::size_t n = std::min(vas.size(), out.size());
  for (std::size_t i = 0; i < n; ++i) out[i] = translate(vas[i], lookup);
}

std::vector<Translation> AddressSpace::translate_batch(std::span<const VirtAddr> vas, Lookup lookup) const {
  std::vector<Translation> out(vas.size());
  translate_batch(vas, out, lookup);
  return out;
}

ReadResult AddressSpace::read(VirtAddr va, std::span<std::byte> out, Lookup lookup) const {
  ReadResult result;
  std::uint64_t done = 0;
  const std::uint64_t want = out.size();
  while (done < want) {
    const VirtAddr at = va + done;
    if (at.value() < va.value()) {  // wrapped past 2^64: not an address anyone mapped
      result.fault = ReadFault{at, Fault{.kind = FaultKind::kNonCanonical}};
      break;
    }
    const Translation t = translate(at, lookup);
    if (!t.mapped()) {
      result.fault = ReadFault{at, *t.fault};
      break;
    }
    // Copy up to the end of this page (a whole 2 MiB / 1 GiB page in one go).
    const std::uint64_t in_page = t.page_size - (at.value() & (t.page_size - 1));
    const std::uint64_t chunk = std::min(in_page, want - done);
    auto bytes = ram_->read_pa(t.pa, chunk);
    if (!bytes) {
      // The page is mapped but not (all) RAM; copy the RAM part 4 KiB at a time so that the
      // fault lands on the first byte that really is not RAM.
      std::uint64_t part = 0;
      while (part < chunk) {
        const std::uint64_t piece = std::min(chunk - part, kPageSize - ((t.pa.value() + part) & (kPageSize - 1)));
        auto small = ram_->read_pa(t.pa + part, piece);
        if (!small) break;
        std::memcpy(out.data() + done + part, small->data(), piece);
        part += piece;
      }
      done += part;
      result.fault = ReadFault{va + done, Fault{.kind = FaultKind::kPageOutsideRam, .page = t.pa + part}};
      break;
    }
    std::memcpy(out.data() + done, bytes->data(), chunk);
    done += chunk;
  }
  result.bytes_read = done;
  return result;
}

}  // namespace haywire::arch
