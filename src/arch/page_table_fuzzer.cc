// Fuzz target: page tables are guest data, the most hostile input Haywire reads. The input
// is a small guest: byte 0 picks the paging mode, bytes 1..8 are CR3, the rest is guest RAM
// from physical 0 (page 0 doubles as a list of virtual addresses to translate). Walks and the
// enumeration must terminate within their bounds, never read outside RAM (ASan), and agree:
// every page a walk maps is listed by the enumeration with the same physical address, page
// size and flags, and every listed range's pages walk to what the listing says.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "guest/testing/fake_ram_file.h"
#include "haywire/arch/enumerate.h"
#include "haywire/arch/walker.h"

namespace {

using namespace haywire;
using namespace haywire::arch;

constexpr std::size_t kRamBytes = 32 * 4096;
constexpr std::size_t kHeader = 9;
constexpr std::size_t kMaxRanges = 1024;
constexpr std::size_t kVas = 128;
constexpr std::size_t kRangesWalked = 128;  // of them, evenly spread (walks dominate the cost)

// The RAM file is unlinked as soon as it is mapped, so that a crash, or libFuzzer's _Exit,
// leaves nothing behind in /dev/shm.
struct Guest {
  guest::testing::FakeRamFile file{kRamBytes, "ptfuzz", guest::testing::FakeRamFile::Lifetime::kUnlinked};
  std::span<std::byte> view = file.guest();
  guest::GuestRam ram = open();

  guest::GuestRam open() const {
    auto r = guest::GuestRam::open(file.path(), kRamBytes);
    if (!r) std::abort();
    return std::move(*r);
  }
};

const MappedRange* covering(const Enumeration& e, VirtAddr va) {
  auto it = std::upper_bound(e.ranges.begin(), e.ranges.end(), va,
                             [](VirtAddr v, const MappedRange& r) { return v < r.va; });
  if (it == e.ranges.begin()) return nullptr;
  --it;
  return va <= it->va_last() ? &*it : nullptr;
}

void check_walk_against_listing(const Translation& t, const Enumeration& e) {
  if (!t.mapped() || e.truncated) return;
  const MappedRange* r = covering(e, t.va);
  if (r == nullptr) std::abort();
  if (r->pa + (t.va - r->va) != t.pa || r->page_size != t.page_size || !(r->flags == t.flags)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Guest g;
  if (size < kHeader) return 0;
  static constexpr unsigned kPhysBits[] = {52, 40, 46, 36};
  const PagingMode mode = PagingMode::make((data[0] & 1) != 0 ? 5 : 4, kPhysBits[(data[0] >> 2) & 3], (data[0] & 2) == 0);
  std::uint64_t cr3 = 0;
  std::memcpy(&cr3, data + 1, sizeof cr3);
  const std::span<std::byte> guest_view = g.view;
  std::memset(guest_view.data(), 0, guest_view.size());
  std::memcpy(guest_view.data(), data + kHeader, std::min(size - kHeader, guest_view.size()));

  const Enumeration e = enumerate(g.ram, mode, Cr3(cr3), {.max_ranges = kMaxRanges, .max_skipped = 16});
  if (e.ranges.size() > kMaxRanges || e.skipped.size() > 16) std::abort();
  // Every (table, level, inherited permissions) at most once: 8 x levels x tables in RAM.
  if (e.tables_expanded > 8ull * static_cast<unsigned>(mode.levels()) * (kRamBytes / 4096)) std::abort();
  for (std::size_t i = 0; i < e.ranges.size(); ++i) {
    const MappedRange& r = e.ranges[i];
    if (r.size == 0 || r.size % r.page_size != 0 || !mode.is_canonical(r.va)) std::abort();
    if (i > 0 && e.ranges[i - 1].va_last() >= r.va) std::abort();
    if (i % (e.ranges.size() / kRangesWalked + 1) != 0) continue;
    // First and last page of each range walk to what the listing says.
    for (VirtAddr va : {r.va, r.va + (r.size - 1)}) {
      const Translation t = walk(g.ram, mode, Cr3(cr3), va);
      if (!t.mapped() || t.pa != r.pa + (va - r.va) || t.page_size != r.page_size || !(t.flags == r.flags)) std::abort();
    }
  }
  // The start of page 0 as virtual addresses to translate, one by one and as a batch.
  std::uint64_t vas_raw[kVas];
  std::memcpy(vas_raw, guest_view.data(), sizeof vas_raw);
  VirtAddr vas[kVas];
  Translation batch[kVas];
  for (std::size_t i = 0; i < kVas; ++i) vas[i] = VirtAddr(vas_raw[i]);
  walk_batch(g.ram, mode, Cr3(cr3), vas, batch);
  for (std::size_t i = 0; i < kVas; ++i) {
    const Translation t = walk(g.ram, mode, Cr3(cr3), vas[i]);
    if (t.mapped() != batch[i].mapped() || (t.mapped() && t.pa != batch[i].pa)) std::abort();
    if (t.fault && t.fault->level > mode.levels()) std::abort();
    check_walk_against_listing(t, e);
  }
  return 0;
}
