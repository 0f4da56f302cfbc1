// PAGEMAP_SCAN (Linux 6.7) on /proc/PID/pagemap: "which pages were written since they were last
// write-protected", answered and re-armed in one ioctl, for ranges registered with an async
// write-protect userfaultfd (UFFD_FEATURE_WP_ASYNC).
#pragma once

#include <cstdint>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/types.h"

namespace haywire::glass {

// A page-aligned [start, end) range of virtual addresses.
struct PageRange {
  VirtAddr start;
  VirtAddr end;
  [[nodiscard]] std::uint64_t bytes() const { return end - start; }
  [[nodiscard]] std::uint64_t pages() const { return (end - start) / kPageSize; }
  bool operator==(const PageRange&) const = default;
};

// Appends `range` to `out`, merging it with the last entry when they touch (out sorted).
void append_coalesced(std::vector<PageRange>& out, PageRange range);
// Sorts (unless sorted already) and merges overlapping or touching ranges; drops empty ones.
void normalize_ranges(std::vector<PageRange>& ranges);
// Parts covered by either; the result is normalized (linear when both are sorted).
std::vector<PageRange> union_ranges(const std::vector<PageRange>& a, const std::vector<PageRange>& b);
// Parts of `from` not covered by `remove` (both normalized); the result is normalized.
std::vector<PageRange> subtract_ranges(const std::vector<PageRange>& from, const std::vector<PageRange>& remove);
// Parts covered by both (both normalized).
std::vector<PageRange> intersect_ranges(const std::vector<PageRange>& a, const std::vector<PageRange>& b);

class PagemapScanner {
 public:
  // Opens /proc/PID/pagemap. `batch` is the output-buffer size in ranges; a scan that fills it
  // resumes where the kernel stopped (walk_end), so it bounds memory, not results.
  static Result<PagemapScanner> open(Pid pid, std::size_t batch = 4096);

  // Appends the written ranges in [start, end) to `out` (coalesced) and write-protects them
  // again. Returns the number of written pages. With check_async, a page in the range whose
  // mapping is not registered for async write-protect fails the scan (Unsupported): that is how
  // a layout change under a registered range shows up.
  Result<std::uint64_t> collect_written(VirtAddr start, VirtAddr end, std::vector<PageRange>& out,
                                        bool check_async = true);
  // Appends the written ranges in [start, end) to `out` like collect_written, without
  // re-arming them: a read of the page tables that changes no entry, so it needs no TLB flush
  // (no interrupt of the target's CPUs) and the pages cost no further fault.
  Result<std::uint64_t> read_written(VirtAddr start, VirtAddr end, std::vector<PageRange>& out,
                                     bool check_async = true);
  // For a range registered just now, not yet armed: appends the pages written before tracking
  // began there (present and private: neither page cache nor the shared zero page, whose
  // presence says only that they were read) and arms EVERY page of the range, in the same
  // pass (so a write racing with it is either reported now or caught by the next scan).
  // Returns the number of pages appended.
  Result<std::uint64_t> collect_written_before(VirtAddr start, VirtAddr end, std::vector<PageRange>& out);
  // The same pages as collect_written_before, without arming anything.
  Result<std::uint64_t> read_written_before(VirtAddr start, VirtAddr end, std::vector<PageRange>& out);
  // Counts written pages in [start, end) without re-arming them.
  Result<std::uint64_t> count_written(VirtAddr start, VirtAddr end);
  // Write-protects every page in [start, end) that is currently written, without output.
  Result<void> rearm(VirtAddr start, VirtAddr end);

  [[nodiscard]] std::uint64_t ioctls() const { return ioctls_; }  // calls made so far

 private:
  PagemapScanner(UniqueFd fd, std::size_t batch) : fd_(std::move(fd)), batch_(batch) {}
  Result<std::uint64_t> scan(VirtAddr start, VirtAddr end, std::vector<PageRange>* out, std::uint64_t flags,
                             std::uint64_t category_mask, std::uint64_t category_inverted = 0,
                             std::uint64_t return_mask = 0x2 /* PAGE_IS_WRITTEN */, std::uint64_t want = 0,
                             std::uint64_t unwanted = 0);
  UniqueFd fd_;
  std::size_t batch_;
  std::vector<std::uint64_t> buffer_;  // page_region triples
  std::uint64_t ioctls_ = 0;
};

}  // namespace haywire::glass
