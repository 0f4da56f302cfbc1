// Record encoders: build a block's content (protocol.h "record stream") in a byte buffer that
// the area then splits into sealed pages. Every record is 8-byte aligned and padded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "beacon/companion/proc.h"
#include "haywire/beacon/protocol.h"

namespace haywire::beacon::companion {

class ContentBuffer {
 public:
  explicit ContentBuffer(std::size_t capacity) : capacity_(capacity) { bytes_.reserve(capacity); }
  void clear() { bytes_.clear(); }
  [[nodiscard]] std::size_t size() const { return bytes_.size(); }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }
  // Room left for records, keeping 8 bytes for the end record.
  [[nodiscard]] std::size_t room() const {
    return size() + sizeof(RecordHeader) >= capacity_ ? 0 : capacity_ - size() - sizeof(RecordHeader);
  }
  [[nodiscard]] std::span<const std::byte> bytes() const { return bytes_; }
  void append(std::span<const std::byte> data) { bytes_.insert(bytes_.end(), data.begin(), data.end()); }
  void pad8() { bytes_.resize((bytes_.size() + 7) & ~std::size_t{7}); }
  void finish();  // appends the kEnd record
  std::byte* at(std::size_t offset) { return bytes_.data() + offset; }
  void resize(std::size_t n) { bytes_.resize(n); }

 private:
  std::size_t capacity_;
  std::vector<std::byte> bytes_;
};

inline std::uint32_t padded_size(std::size_t bytes) { return static_cast<std::uint32_t>((bytes + 7) & ~std::size_t{7}); }

// PidListRecord + pids (as many as fit). Returns the number written.
std::size_t encode_pid_list(ContentBuffer& out, std::span<const std::uint32_t> pids, std::uint64_t cycle);

// ProcessRecord (+ cmdline) then one SectionRecord per section, as many as fit. False when not
// even the process record fits. `flags` are kProcess* bits.
bool encode_process(ContentBuffer& out, const ProcessInfo& info, std::span<const Section> sections,
                    std::uint16_t flags, std::uint64_t collected_ns, std::uint64_t cycle);

struct PagemapSummary {
  std::uint16_t flags = 0;
  std::uint64_t window_start_page = 0;
  std::uint64_t window_pages = 0;
  std::uint64_t mapped_pages = 0;
  std::uint64_t present_pages = 0;
  std::uint64_t swapped_pages = 0;
};
// PagemapRecord + chunks (as many as fit; sets kPagemapTruncated otherwise).
void encode_pagemap(ContentBuffer& out, PagemapSummary summary, std::span<const RleChunk> chunks);

}  // namespace haywire::beacon::companion
