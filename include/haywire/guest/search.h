// Scanning guest RAM for byte patterns (`haywire mem find`, the kernel banner).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/types.h"
#include "haywire/guest/ram.h"

namespace haywire::guest {

// Guest-physical addresses where `pattern` occurs, in increasing order, at most `max_hits`.
// Matches are searched within each RAM region (a match cannot span a hole).
std::vector<PhysAddr> find_all(const GuestRam& ram, std::span<const std::byte> pattern,
                               std::size_t max_hits = 1000);

struct KernelBanner {
  PhysAddr where;
  std::string text;  // "Linux version 6.1.0-... (...) #1 SMP ..."
};
// The Linux version banner ("Linux version X (builder) (compiler) #N ..."), found by scanning.
// The bytes are guest-controlled: the text is bounded and restricted to printable ASCII.
std::optional<KernelBanner> find_kernel_banner(const GuestRam& ram);

}  // namespace haywire::guest
