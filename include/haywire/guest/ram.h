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

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/ram_layout.h"
#include "haywire/base/types.h"

namespace haywire::guest {

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

 private:
  GuestRam(std::string path, ReadOnlyMapping mapping, RamLayout layout)
      : path_(std::move(path)), mapping_(std::move(mapping)), layout_(std::move(layout)) {}

  std::string path_;
  ReadOnlyMapping mapping_;
  RamLayout layout_;
};

}  // namespace haywire::guest
