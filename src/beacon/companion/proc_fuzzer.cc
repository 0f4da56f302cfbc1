// Fuzz target for the companion's /proc parsers (stat, status, cmdline, maps): whatever the
// kernel (or a hostile FUSE /proc) hands it, they must not crash or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "beacon/companion/proc.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace haywire::beacon::companion;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ProcessInfo info;
  (void)parse_stat(text, info);
  (void)parse_status_ids(text, info);
  parse_cmdline(text, info.cmdline);
  std::vector<Section> sections;
  (void)parse_maps(text, sections, 64);
  for (const Section& s : sections) {
    if (s.end < s.start || s.path.size() > kMaxPath) __builtin_trap();
  }
  if (info.cmdline.size() > kMaxCmdline) __builtin_trap();
  return 0;
}
