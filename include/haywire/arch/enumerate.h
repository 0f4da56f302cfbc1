// Every mapping of one address space, as coalesced runs: adjacent pages with contiguous
// guest-physical addresses, the same page size and the same effective flags become one range.
// What QEMU's `info tlb` prints page by page, in a form programs can use.
//
// Bounded whatever the guest wrote. Each page table is read as a whole (one 4 KiB span) and
// each (table, level, inherited permissions) is expanded at most once: a table that the
// guest links in several places (legitimately shared, or a loop / self-reference) is
// listed again by copying what its first expansion produced, never by walking it again. So
// the work is at most 8 x levels x (tables in guest RAM) x 512 entries plus the size of the
// output, and the output stops at `max_ranges` (then `truncated` is set).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "haywire/arch/paging.h"
#include "haywire/base/types.h"
#include "haywire/guest/ram.h"

namespace haywire::arch {

struct MappedRange {
  VirtAddr va;              // canonical, page-aligned
  PhysAddr pa;
  std::uint64_t size = 0;   // bytes, a multiple of page_size
  std::uint64_t page_size = 0;
  PageFlags flags;          // effective flags, as in Translation
  // The last byte (inclusive: the range ending at the top of the address space has no
  // one-past-the-end address in 64 bits).
  [[nodiscard]] VirtAddr va_last() const { return va + (size - 1); }
  bool operator==(const MappedRange&) const = default;
};

// A present entry whose subtree could not be listed (reserved bits, or a table that is not
// guest RAM): the `span` bytes from `va` are not in the ranges.
struct SkippedSubtree {
  VirtAddr va;
  std::uint64_t span = 0;
  Fault fault;
};

enum class Half { kAll, kUser, kKernel };

struct EnumerateOptions {
  Half half = Half::kAll;               // kKernel: only addresses >= kernel_half_start()
  std::size_t max_ranges = 1u << 22;    // stop (truncated) after this many ranges
  std::size_t max_skipped = 256;        // keep this many SkippedSubtree records (all are counted)
};

struct Enumeration {
  std::vector<MappedRange> ranges;      // sorted by va, disjoint
  std::vector<SkippedSubtree> skipped;  // the first max_skipped of them
  std::uint64_t skipped_total = 0;
  std::uint64_t tables_expanded = 0;    // table reads (each at most once per level and permissions)
  std::uint64_t tables_replayed = 0;    // links to a table already expanded (shared, aliased, looped)
  std::uint64_t mapped_bytes = 0;
  bool truncated = false;               // max_ranges reached: the listing is incomplete
  std::string truncated_reason;
};

Enumeration enumerate(const guest::GuestRam& ram, const PagingMode& mode, Cr3 cr3,
                      const EnumerateOptions& options = {});

}  // namespace haywire::arch
