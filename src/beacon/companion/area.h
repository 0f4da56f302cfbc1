// The beacon area: memory the companion owns (locked anonymous pages in the guest, or a
// MAP_SHARED window of a file standing in for guest RAM), the guest-physical address of each
// page, a first-fit page allocator, and page sealing in protocol.h's seqlock order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/beacon/protocol.h"

namespace haywire::beacon::companion {

struct SealedBlock {
  BlockType type = BlockType::kUnused;
  std::uint32_t block_id = 0;
  std::uint32_t first_page = 0;
  std::uint32_t page_count = 0;  // allotted
  std::uint32_t generation = 0;
  std::uint32_t pages_used = 0;  // of the last seal
  std::vector<std::uint32_t> checksums;  // of the last seal, per page
};

class Area {
 public:
  Area() = default;
  Area(Area&& other) noexcept;
  Area& operator=(Area&& other) noexcept;
  Area(const Area&) = delete;
  Area& operator=(const Area&) = delete;
  ~Area();

  // Guest mode: anonymous, locked (if allowed), every page touched.
  static Result<Area> allocate(std::size_t bytes);
  // Host mode: `bytes` of `path` at page-aligned `offset`, MAP_SHARED read-write.
  static Result<Area> map_file(const std::string& path, std::uint64_t offset, std::size_t bytes);

  [[nodiscard]] std::uint32_t pages() const { return pages_; }
  [[nodiscard]] std::byte* page(std::uint32_t index) { return base_ + std::size_t{index} * kPageSize; }
  [[nodiscard]] std::span<const std::byte> bytes() const { return {base_, std::size_t{pages_} * kPageSize}; }
  [[nodiscard]] bool locked() const { return locked_; }
  [[nodiscard]] bool frames_known() const { return frames_known_; }
  [[nodiscard]] bool ram_file() const { return ram_file_; }
  [[nodiscard]] const std::vector<std::uint64_t>& addresses() const { return addresses_; }

  // Re-reads /proc/self/pagemap (guest mode). True when an address changed.
  bool refresh_addresses();

  // First-fit run of `count` free pages, marked used.
  std::optional<std::uint32_t> allocate_pages(std::uint32_t count);
  [[nodiscard]] std::uint32_t free_pages() const;

  // Writes `content` over the block's pages (header with checksum 0, payload, final header),
  // bumping its generation. Content beyond the allotment is cut (callers size it first).
  void seal(SealedBlock& block, std::span<const std::byte> content, std::uint64_t timestamp_ns);
  // Reads the block back: every page's header and payload as sealed. False on any mismatch.
  bool verify(const SealedBlock& block, std::span<const std::byte> content, std::uint64_t timestamp_ns);
  // Page 0: header + MasterPayload only; the camera requests after it are the host's.
  void seal_master(std::uint32_t generation, const MasterPayload& master, std::uint64_t timestamp_ns);

 private:
  std::byte* base_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  std::uint32_t pages_ = 0;
  bool locked_ = false;
  bool frames_known_ = false;
  bool ram_file_ = false;
  std::vector<std::uint64_t> addresses_;
  std::vector<bool> used_;
};

std::uint64_t monotonic_ns();

}  // namespace haywire::beacon::companion
