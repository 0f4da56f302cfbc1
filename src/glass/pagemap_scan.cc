#include "haywire/glass/pagemap_scan.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "glass/uapi.h"

namespace haywire::glass {

static_assert(sizeof(page_region) == 3 * sizeof(std::uint64_t));
static_assert(sizeof(pm_scan_arg) == 96);

void append_coalesced(std::vector<PageRange>& out, PageRange range) {
  if (range.start >= range.end) return;
  if (!out.empty() && out.back().end >= range.start) {
    out.back().end = std::max(out.back().end, range.end);
    return;
  }
  out.push_back(range);
}

void normalize_ranges(std::vector<PageRange>& ranges) {
  // Most callers pass ranges that are sorted already (scan output, set algebra results): the
  // check is linear, the sort is not. Then coalesce in place.
  auto by_start = [](const PageRange& a, const PageRange& b) { return a.start < b.start; };
  if (!std::is_sorted(ranges.begin(), ranges.end(), by_start)) std::sort(ranges.begin(), ranges.end(), by_start);
  std::size_t kept = 0;
  for (const PageRange& r : ranges) {
    if (r.start >= r.end) continue;
    if (kept > 0 && ranges[kept - 1].end >= r.start) {
      ranges[kept - 1].end = std::max(ranges[kept - 1].end, r.end);
    } else {
      ranges[kept++] = r;
    }
  }
  ranges.resize(kept);
}

std::vector<PageRange> union_ranges(const std::vector<PageRange>& a, const std::vector<PageRange>& b) {
  std::vector<PageRange> out;
  out.reserve(a.size() + b.size());
  std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out),
             [](const PageRange& x, const PageRange& y) { return x.start < y.start; });
  normalize_ranges(out);
  return out;
}

std::vector<PageRange> subtract_ranges(const std::vector<PageRange>& from, const std::vector<PageRange>& remove) {
  std::vector<PageRange> out;
  std::size_t j = 0;
  for (PageRange r : from) {
    while (j < remove.size() && remove[j].end <= r.start) ++j;
    VirtAddr cursor = r.start;
    for (std::size_t k = j; k < remove.size() && remove[k].start < r.end; ++k) {
      if (remove[k].start > cursor) out.push_back({cursor, remove[k].start});
      cursor = std::max(cursor, remove[k].end);
    }
    if (cursor < r.end) out.push_back({cursor, r.end});
  }
  return out;
}

std::vector<PageRange> intersect_ranges(const std::vector<PageRange>& a, const std::vector<PageRange>& b) {
  std::vector<PageRange> out;
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() && j < b.size()) {
    VirtAddr lo = std::max(a[i].start, b[j].start);
    VirtAddr hi = std::min(a[i].end, b[j].end);
    if (lo < hi) out.push_back({lo, hi});
    if (a[i].end < b[j].end) ++i;
    else ++j;
  }
  return out;
}

Result<PagemapScanner> PagemapScanner::open(Pid pid, std::size_t batch) {
  std::string path = fmt::format("/proc/{}/pagemap", pid.value());
  auto fd = open_file(path, O_RDONLY | O_CLOEXEC);
  if (!fd) {
    if (fd.error().is<FileNotFound>())
      return fail(NotFound{fmt::format("process {}", pid.value()), "check the PID (is the process still running?)"});
    return std::unexpected(std::move(fd.error()));
  }
  return PagemapScanner(std::move(*fd), std::max<std::size_t>(batch, 1));
}

Result<std::uint64_t> PagemapScanner::scan(VirtAddr start, VirtAddr end, std::vector<PageRange>* out,
                                           std::uint64_t flags, std::uint64_t category_mask,
                                           std::uint64_t category_inverted, std::uint64_t return_mask,
                                           std::uint64_t want, std::uint64_t unwanted) {
  if (out != nullptr) buffer_.resize(batch_ * 3);
  std::uint64_t pages = 0;
  std::uint64_t cursor = start.value();
  while (cursor < end.value()) {
    pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.flags = flags;
    arg.start = cursor;
    arg.end = end.value();
    arg.vec = out != nullptr ? reinterpret_cast<std::uint64_t>(buffer_.data()) : 0;
    arg.vec_len = out != nullptr ? batch_ : 0;
    arg.category_mask = category_mask;
    arg.category_inverted = category_inverted;
    arg.return_mask = return_mask;
    ++ioctls_;
    int n = ::ioctl(fd_.get(), PAGEMAP_SCAN, &arg);
    if (n < 0) {
      int err = errno;
      std::string what = fmt::format("PAGEMAP_SCAN on 0x{:x}-0x{:x}", cursor, end.value());
      if (err == ENOTTY)
        return fail(Unsupported{"PAGEMAP_SCAN ioctl", "ENOTTY on /proc/PID/pagemap", "needs Linux 6.7 or newer"});
      if (err == EPERM && (flags & PM_SCAN_CHECK_WPASYNC) != 0)
        return fail(Unsupported{"async write-protect on every page of the range", what,
                                "the range holds a mapping not registered for tracking: re-read the layout"});
      if (err == ESRCH) return fail(NotFound{"target process", "it has exited"});
      return fail(SystemCallFailed{what, err, ""});
    }
    auto regions = reinterpret_cast<const page_region*>(buffer_.data());
    for (int i = 0; i < n && out != nullptr; ++i) {
      if ((regions[i].categories & want) != want || (regions[i].categories & unwanted) != 0) continue;
      append_coalesced(*out, {VirtAddr(regions[i].start), VirtAddr(regions[i].end)});
      pages += (regions[i].end - regions[i].start) / kPageSize;
    }
    // walk_end == end: done. Otherwise the buffer filled; continue where the kernel stopped.
    if (arg.walk_end <= cursor) return fail(SystemCallFailed{"PAGEMAP_SCAN made no progress", EIO, ""});
    cursor = arg.walk_end;
  }
  return pages;
}

Result<std::uint64_t> PagemapScanner::collect_written(VirtAddr start, VirtAddr end, std::vector<PageRange>& out,
                                                      bool check_async) {
  return scan(start, end, &out, PM_SCAN_WP_MATCHING | (check_async ? PM_SCAN_CHECK_WPASYNC : 0), PAGE_IS_WRITTEN);
}

Result<std::uint64_t> PagemapScanner::read_written(VirtAddr start, VirtAddr end, std::vector<PageRange>& out,
                                                   bool check_async) {
  return scan(start, end, &out, check_async ? PM_SCAN_CHECK_WPASYNC : 0, PAGE_IS_WRITTEN);
}

namespace {
// Every page matches (category_mask 0); the categories returned pick the written ones (PRESENT
// too: the holes of a range not armed yet count as written).
constexpr std::uint64_t kWrittenBefore = PAGE_IS_WRITTEN | PAGE_IS_PRESENT;
constexpr std::uint64_t kOnlyRead = PAGE_IS_FILE | PAGE_IS_PFNZERO;
}  // namespace

Result<std::uint64_t> PagemapScanner::collect_written_before(VirtAddr start, VirtAddr end,
                                                             std::vector<PageRange>& out) {
  return scan(start, end, &out, PM_SCAN_WP_MATCHING, 0, 0, kWrittenBefore | kOnlyRead, kWrittenBefore, kOnlyRead);
}

Result<std::uint64_t> PagemapScanner::read_written_before(VirtAddr start, VirtAddr end,
                                                          std::vector<PageRange>& out) {
  return scan(start, end, &out, 0, 0, 0, kWrittenBefore | kOnlyRead, kWrittenBefore, kOnlyRead);
}

Result<std::uint64_t> PagemapScanner::count_written(VirtAddr start, VirtAddr end) {
  std::vector<PageRange> ranges;
  return scan(start, end, &ranges, 0, PAGE_IS_WRITTEN);
}

Result<void> PagemapScanner::rearm(VirtAddr start, VirtAddr end) {
  auto r = scan(start, end, nullptr, PM_SCAN_WP_MATCHING, PAGE_IS_WRITTEN);
  if (!r) return std::unexpected(std::move(r.error()));
  return {};
}

}  // namespace haywire::glass
