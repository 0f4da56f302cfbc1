// Copies of guest RAM taken while the guest runs, with torn-read detection.
//
// Each page is hashed (xxh3) right after it is copied, both the copy and the live source;
// a page whose two hashes differ was written during its copy and is copied again, up to
// `max_retries` times.
// The result says whether every page is internally consistent and lists those that are not.
// Consistency is per page: pages are copied at slightly different instants. For one instant
// across all of RAM, pause the VM around the copy (vm layer: snapshot with paused=true).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/guest/ram.h"

namespace haywire::guest {

struct SnapshotOptions {
  int max_retries = 4;          // re-copies of a torn page before giving up on it
  bool detect_tears = true;     // false: a plain copy, no hashes (fastest)
};

struct SnapshotReport {
  bool consistent = true;                 // no page left torn
  std::vector<std::uint64_t> torn_pages;  // file page indices still torn after the retries
  std::uint64_t recopied_pages = 0;       // pages that needed at least one retry
  std::uint64_t bytes_read = 0;           // bytes read from the source (holes are not read)
  std::chrono::nanoseconds elapsed{0};
};

// A reusable snapshot buffer: the bytes of the file plus one xxh3 per 4 KiB page.
// Reusing one Snapshot across calls avoids page-faulting a fresh buffer every time.
class Snapshot {
 public:
  Snapshot() = default;
  explicit Snapshot(std::uint64_t size);

  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_.get(), size_}; }
  [[nodiscard]] std::span<const std::uint64_t> page_hashes() const { return hashes_; }
  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] bool has_hashes() const { return hashes_valid_; }

 private:
  friend Result<SnapshotReport> take_snapshot(std::span<const std::byte>, Snapshot&,
                                              const SnapshotOptions&,
                                              std::optional<std::span<const FileRange>>);
  void resize(std::uint64_t size);

  struct FreeBuffer {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, FreeBuffer> data_;
  std::uint64_t size_ = 0;
  std::vector<std::uint64_t> hashes_;
  bool hashes_valid_ = false;
};

// Copies `source` (a live, concurrently written memory range) into `into`. If `data` is
// given, only those ranges are read; everything else is known to be zero (file holes) and is
// written as zeros without touching the source.
Result<SnapshotReport> take_snapshot(std::span<const std::byte> source, Snapshot& into,
                                     const SnapshotOptions& options = {},
                                     std::optional<std::span<const FileRange>> data = std::nullopt);
// All of a guest's RAM, skipping the file's holes (see GuestRam::data_ranges).
inline Result<SnapshotReport> take_snapshot(const GuestRam& ram, Snapshot& into,
                                            const SnapshotOptions& options = {}) {
  auto ranges = ram.data_ranges();
  return take_snapshot(ram.file_bytes(), into, options, std::span<const FileRange>(ranges));
}

// File page indices whose hash differs between two snapshots of the same RAM
// (both taken with tear detection). InvalidArgument if sizes differ or hashes are missing.
Result<std::vector<std::uint64_t>> changed_pages(const Snapshot& before, const Snapshot& after);

// The xxh3 of one page (exposed so callers and tests hash exactly as snapshots do).
std::uint64_t page_hash(std::span<const std::byte> page);

}  // namespace haywire::guest
