#include "haywire/guest/snapshot.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "guest/page_hash.h"
#include "haywire/base/types.h"

namespace haywire::guest {
namespace {

// Pages are copied in batches of 16 (64 KiB, fits L2): the copy reads the source from DRAM
// once, then the copy and the source are hashed from cache and compared. Measured: larger
// batches fall out of L2, and hashing before the copy makes DRAM serve the source twice.
constexpr std::uint64_t kBatchPages = 16;

// Page index ranges [first, last) that overlap `data`, merged; all pages if `data` is empty.
std::vector<std::pair<std::uint64_t, std::uint64_t>> data_pages(std::uint64_t pages,
                                                                std::optional<std::span<const FileRange>> data) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (!data) {
    out.emplace_back(0, pages);
    return out;
  }
  for (const FileRange& r : *data) {
    if (r.length == 0) continue;
    std::uint64_t first = std::min(pages, r.offset / kPageSize);
    std::uint64_t last = std::min(pages, (r.offset + r.length + kPageSize - 1) / kPageSize);
    if (first >= last) continue;
    if (!out.empty() && first <= out.back().second) out.back().second = std::max(out.back().second, last);
    else out.emplace_back(first, last);
  }
  return out;
}

}  // namespace

std::uint64_t page_hash(std::span<const std::byte> page) {
  return detail::fast_hash()(page.data(), page.size());
}

void Snapshot::FreeBuffer::operator()(std::byte* p) const { std::free(p); }

Snapshot::Snapshot(std::uint64_t size) { resize(size); }

void Snapshot::resize(std::uint64_t size) {
  if (size == size_ && data_) return;
  // Page-aligned (unaligned 64 KiB batch copies are measurably slower), and written once so
  // that every page of the buffer is faulted in here, not during a copy.
  const std::uint64_t rounded = (size + kPageSize - 1) / kPageSize * kPageSize;
  data_.reset(static_cast<std::byte*>(std::aligned_alloc(kPageSize, rounded)));
  if (!data_) throw std::bad_alloc();
  std::memset(data_.get(), 0, rounded);
  size_ = size;
  hashes_.assign((size + kPageSize - 1) / kPageSize, 0);
  hashes_valid_ = false;
}

Result<SnapshotReport> take_snapshot(std::span<const std::byte> source, Snapshot& into,
                                     const SnapshotOptions& options,
                                     std::optional<std::span<const FileRange>> data) {
  auto start = std::chrono::steady_clock::now();
  if (source.empty()) return fail(InvalidArgument{"cannot snapshot an empty range"});
  into.resize(source.size());
  std::byte* dst = into.data_.get();
  const std::byte* src = source.data();
  const std::uint64_t size = source.size();
  const std::uint64_t pages = into.hashes_.size();
  std::uint64_t* hashes = into.hashes_.data();
  SnapshotReport report;
  auto page_len = [&](std::uint64_t p) { return std::min<std::uint64_t>(kPageSize, size - p * kPageSize); };
  const detail::HashFn hash = detail::fast_hash();
  static const std::vector<std::byte> zero_page(kPageSize);
  const std::uint64_t zero_hash = hash(zero_page.data(), kPageSize);

  // Holes read as zeros: write zeros, do not touch the source (reading would allocate it).
  auto fill_hole = [&](std::uint64_t first, std::uint64_t last) {
    if (first >= last) return;
    std::memset(dst + first * kPageSize, 0, std::min(size, last * kPageSize) - first * kPageSize);
    if (!options.detect_tears) return;
    for (std::uint64_t p = first; p < last; ++p)
      hashes[p] = page_len(p) == kPageSize ? zero_hash : hash(zero_page.data(), page_len(p));
  };

  // Copy, then hash the copy and the source. Equal hashes mean the copy equals the page as it
  // is now, i.e. the copy is a picture of one instant; a page written during its copy differs
  // (also when the write was undone before we looked, as long as the copy saw it).
  auto copy_with_tear_detection = [&](std::uint64_t first_page, std::uint64_t end_page) {
    for (std::uint64_t first = first_page; first < end_page; first += kBatchPages) {
      const std::uint64_t count = std::min(kBatchPages, end_page - first);
      const std::uint64_t offset = first * kPageSize;
      std::memcpy(dst + offset, src + offset, std::min<std::uint64_t>(count * kPageSize, size - offset));
      for (std::uint64_t page = first; page < first + count; ++page) {
        const std::uint64_t at = page * kPageSize;
        const std::uint64_t len = page_len(page);
        std::uint64_t copied = hash(dst + at, len);
        if (copied == hash(src + at, len)) {
          hashes[page] = copied;
          continue;
        }
        // Torn: the guest wrote this page while we copied it. Copy it again on its own.
        ++report.recopied_pages;
        bool settled = false;
        for (int attempt = 0; attempt < options.max_retries && !settled; ++attempt) {
          std::memcpy(dst + at, src + at, len);
          copied = hash(dst + at, len);
          settled = copied == hash(src + at, len);
        }
        hashes[page] = copied;
        if (!settled) report.torn_pages.push_back(page);
      }
    }
  };

  std::uint64_t next = 0;  // first page not yet handled
  for (auto [first, last] : data_pages(pages, data)) {
    fill_hole(next, first);
    report.bytes_read += std::min(size, last * kPageSize) - first * kPageSize;
    if (options.detect_tears) {
      copy_with_tear_detection(first, last);
    } else {
      const std::uint64_t offset = first * kPageSize;
      std::memcpy(dst + offset, src + offset, std::min(size, last * kPageSize) - offset);
    }
    next = last;
  }
  fill_hole(next, pages);

  // Pages still torn were being written across several immediate re-copies (a guest under TCG
  // takes tens of microseconds to rewrite a page): by now the rest of RAM has been copied and
  // the writer has most likely moved on, so give each one more round before reporting it.
  if (!report.torn_pages.empty()) {
    std::vector<std::uint64_t> still_torn;
    for (std::uint64_t page : report.torn_pages) {
      const std::uint64_t at = page * kPageSize;
      const std::uint64_t len = page_len(page);
      bool settled = false;
      std::uint64_t copied = 0;
      for (int attempt = 0; attempt < options.max_retries && !settled; ++attempt) {
        std::memcpy(dst + at, src + at, len);
        copied = hash(dst + at, len);
        settled = copied == hash(src + at, len);
      }
      hashes[page] = copied;
      if (!settled) still_torn.push_back(page);
    }
    report.torn_pages = std::move(still_torn);
  }

  into.hashes_valid_ = options.detect_tears;
  report.consistent = report.torn_pages.empty();
  report.elapsed = std::chrono::steady_clock::now() - start;
  return report;
}

Result<std::vector<std::uint64_t>> changed_pages(const Snapshot& before, const Snapshot& after) {
  if (!before.has_hashes() || !after.has_hashes())
    return fail(InvalidArgument{"page change detection needs snapshots taken with tear detection"});
  if (before.size() != after.size())
    return fail(InvalidArgument{"cannot compare snapshots of different sizes"});
  std::vector<std::uint64_t> changed;
  auto a = before.page_hashes();
  auto b = after.page_hashes();
  for (std::uint64_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) changed.push_back(i);
  return changed;
}

}  // namespace haywire::guest
