// Fuzz target: `info mtree -f` text is the monitor's, but guest-chosen device names and a
// compromised QEMU could shape it; parse_mtree must never crash or return a layout that
// points outside the RAM file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "haywire/qmp/memory_layout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::uint64_t file_size : {0x1000'0000ull, 0x1'0000'0000ull, 0x2'0000'0000ull}) {
    auto layout = haywire::qmp::parse_mtree(text, "mem0", file_size);
    if (!layout) continue;
    std::uint64_t previous_end = 0;
    for (const haywire::RamRegion& region : layout->regions()) {
      bool inside_file = region.size != 0 && region.file_offset <= file_size &&
                         region.size <= file_size - region.file_offset;
      if (!inside_file || region.start.value() < previous_end) std::abort();
      previous_end = region.end().value();
    }
  }
  return 0;
}
