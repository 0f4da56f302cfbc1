// Where each range of guest-physical memory lives in the RAM backend file. A guest-physical
// address is not a file offset: on q35 with more than 2 GiB, RAM above the PCI hole sits at
// guest 4 GiB but at file offset `below_4g`.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"

namespace haywire {

struct RamRegion {
  PhysAddr start;            // first guest-physical byte
  std::uint64_t size = 0;    // bytes
  std::uint64_t file_offset = 0;
  [[nodiscard]] PhysAddr end() const { return start + size; }  // one past the last byte
  bool operator==(const RamRegion&) const = default;
};

class RamLayout {
 public:
  RamLayout() = default;

  // Sorts, merges regions contiguous in both address and file offset, and rejects overlaps,
  // empty regions, wrap-around and regions past `file_size`.
  static Result<RamLayout> make(std::vector<RamRegion> regions, std::uint64_t file_size);
  // The whole file at guest-physical 0 (plain RAM files in tests, no holes).
  static RamLayout identity(std::uint64_t file_size);

  // File offset of [addr, addr + len) if it lies inside one region, else InvalidAddress.
  [[nodiscard]] Result<std::uint64_t> file_offset(PhysAddr addr, std::uint64_t len) const;
  // Inverse: the guest-physical address of a file offset, if any region covers it.
  [[nodiscard]] std::optional<PhysAddr> phys_of_offset(std::uint64_t offset) const;

  [[nodiscard]] const std::vector<RamRegion>& regions() const { return regions_; }
  // One past the highest guest-physical RAM byte.
  [[nodiscard]] std::uint64_t end() const;
  // Total bytes of RAM described.
  [[nodiscard]] std::uint64_t total() const;

 private:
  std::vector<RamRegion> regions_;  // sorted by start, disjoint
};

}  // namespace haywire
