// A camera's content for one cycle: process info, sections, and the RLE pagemap read from
// /proc/PID/pagemap over the sections (windowed over huge address spaces).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "beacon/companion/proc.h"
#include "beacon/companion/records.h"
#include "haywire/beacon/protocol.h"

namespace haywire::beacon::companion {

struct CameraScratch {
  ProcessInfo info;
  std::vector<Section> sections;
  std::vector<std::uint64_t> entries;  // one pread batch of pagemap entries
  std::vector<RleChunk> chunks;
  std::string text;
};

struct CameraOutcome {
  bool gone = false;
  std::uint64_t pages_read = 0;
  std::uint64_t rle_bytes = 0;
};

// Fills `out` (cleared first) with the camera's records. `window_cursor` is the virtual page
// where the next window starts (windowed mode only; updated).
CameraOutcome build_camera(const std::string& proc_root, std::uint32_t pid, bool frames_known,
                           std::uint64_t window_pages, std::uint64_t& window_cursor, std::uint64_t cycle,
                           ContentBuffer& out, CameraScratch& scratch);

}  // namespace haywire::beacon::companion
