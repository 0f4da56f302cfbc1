// Guest RAM: the QEMU memory-backend-file mapped read-only, addressed guest-physically.
//
// Reads are pointer arithmetic over one PROT_READ, MAP_SHARED mapping; the bytes change under
// the reader while the guest runs (see snapshot.h for consistent copies). A GuestRam is
// immutable after open(), so any number of threads may read through it at once. Each VM has
// its own GuestRam and mapping: a read of one can never return another's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/ram_layout.h"
#include "haywire/base/types.h"

namespace haywire::guest {

// A byte range of the RAM file, in file offsets.
struct FileRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const FileRange&) const = default;
};

class GuestRam {
 public:
  // Opens `path` O_RDONLY and maps it whole. `expected_size` (from QMP) must match the file's
  // size when given. An empty `layout` means the file is RAM from guest-physical 0 (tests).
  static Result<GuestRam> open(const std::string& path,
                               std::optional<std::uint64_t> expected_size = std::nullopt,
                               RamLayout layout = {});

  // Zero-copy view of [addr, addr + len). Valid while this GuestRam lives. InvalidAddress if
  // the range is not wholly inside one RAM region (past the end, in or across a hole).
  [[nodiscard]] Result<std::span<const std::byte>> read_pa(PhysAddr addr, std::uint64_t len) const;
  // Copies into `out` (same rules as read_pa).
  Result<void> read_pa_into(PhysAddr addr, std::span<std::byte> out) const;

  // The whole file in file order (page i of the file is bytes [i*4096, (i+1)*4096)).
  [[nodiscard]] std::span<const std::byte> file_bytes() const { return mapping_.bytes(); }
  [[nodiscard]] const RamLayout& layout() const { return layout_; }
  [[nodiscard]] std::uint64_t size() const { return mapping_.size(); }
  [[nodiscard]] const std::string& path() const { return path_; }

  // The parts of the file that hold data, in order; the rest are holes the guest never
  // touched and read as zeros. Reading a hole of a tmpfs file through the mapping allocates
  // it, so whole-RAM scans (search, snapshots) visit only these ranges: a 3 GiB guest that
  // uses 200 MiB costs 200 MiB of reads, not 3 GiB of reads and 3 GiB of host memory.
  // A snapshot of the file's state when called. On filesystems without SEEK_DATA, the
  // whole file is one range.
  [[nodiscard]] std::vector<FileRange> data_ranges() const;

 private:
  GuestRam(std::string path, UniqueFd fd, ReadOnlyMapping mapping, RamLayout layout)
      : path_(std::move(path)), fd_(std::move(fd)), mapping_(std::move(mapping)), layout_(std::move(layout)) {}

  std::string path_;
  UniqueFd fd_;  // read-only; kept for SEEK_DATA/SEEK_HOLE
  ReadOnlyMapping mapping_;
  RamLayout layout_;
};

}  // namespace haywire::guest
