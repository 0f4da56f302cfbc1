#include "beacon/companion/camera.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "beacon/companion/area.h"
#include "haywire/beacon/companion.h"

namespace haywire::beacon::companion {
namespace {

constexpr std::size_t kBatchEntries = 32768;  // 256 KiB of pagemap per pread
constexpr std::size_t kMaxCameraSections = 65536;

// Reads pagemap entries for [first, first + count) pages into the encoder. False when the
// process vanished mid-read.
bool read_range(int fd, std::uint64_t first, std::uint64_t count, RleEncoder& rle, CameraScratch& s,
                std::uint64_t& pages_read) {
  s.entries.resize(kBatchEntries);
  while (count > 0) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(count, kBatchEntries));
    ssize_t got = ::pread(fd, s.entries.data(), n * 8, static_cast<off_t>(first * 8));
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;  // ESRCH or similar: the process is gone
    }
    std::size_t entries = static_cast<std::size_t>(got) / 8;
    if (entries == 0) return false;  // past the end of the address space: treat as gone
    rle.add(first, std::span(s.entries.data(), entries));
    pages_read += entries;
    first += entries;
    count -= entries;
  }
  return true;
}

}  // namespace

CameraOutcome build_camera(const std::string& proc_root, std::uint32_t pid, bool frames_known,
                           std::uint64_t window_pages, std::uint64_t& window_cursor, std::uint64_t cycle,
                           ContentBuffer& out, CameraScratch& s) {
  CameraOutcome result;
  out.clear();
  std::uint64_t collected = monotonic_ns();
  if (!read_process(proc_root, pid, s.info, s.text)) {
    result.gone = true;
    return result;
  }
  bool truncated = false;
  if (!read_sections(proc_root, pid, s.sections, kMaxCameraSections, truncated, s.text)) {
    result.gone = true;
    return result;
  }
  int fd = ::open((proc_root + "/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && !process_exists(proc_root, pid)) {
    result.gone = true;
    return result;
  }

  std::uint64_t mapped = 0;
  for (const Section& sec : s.sections) mapped += (sec.end - sec.start) / kPageSize;
  bool windowed = mapped > kWindowThresholdPages;
  PagemapSummary summary;
  summary.mapped_pages = mapped;
  s.chunks.clear();
  RleEncoder rle(s.chunks, frames_known);
  bool ok = true;
  if (fd >= 0) {
    std::uint64_t budget = windowed ? window_pages : UINT64_MAX;
    std::uint64_t covered_first = UINT64_MAX, covered_end = 0;
    // Windowed: start at the cursor; when it is past every section, wrap to the first.
    bool started = !windowed;
    for (int pass = 0; pass < 2 && budget > 0 && ok; ++pass) {
      for (const Section& sec : s.sections) {
        if (budget == 0 || !ok) break;
        std::uint64_t first = sec.start / kPageSize, end = sec.end / kPageSize;
        if (windowed && !started) {
          if (end <= window_cursor) continue;
          first = std::max(first, window_cursor);
          started = true;
        }
        std::uint64_t count = std::min(end - first, budget);
        if (count == 0) continue;
        ok = read_range(fd, first, count, rle, s, result.pages_read);
        budget = windowed ? budget - count : budget;
        covered_first = std::min(covered_first, first);
        covered_end = std::max(covered_end, first + count);
        if (windowed) window_cursor = first + count;
      }
      if (!windowed || started) break;
      window_cursor = 0;  // cursor beyond the last section: wrap
    }
    if (windowed) {
      summary.flags |= kPagemapWindowed;
      summary.window_start_page = covered_first == UINT64_MAX ? 0 : covered_first;
      summary.window_pages = covered_end > summary.window_start_page ? covered_end - summary.window_start_page : 0;
      if (budget > 0) window_cursor = 0;  // reached the end: next window starts over
    } else if (!s.sections.empty()) {
      summary.window_start_page = s.sections.front().start / kPageSize;
      summary.window_pages = s.sections.back().end / kPageSize - summary.window_start_page;
    }
    ::close(fd);
  }
  rle.finish();
  if (!ok && !process_exists(proc_root, pid)) {
    result.gone = true;
    return result;
  }
  if (!frames_known) summary.flags |= kPagemapNoFrames;
  summary.present_pages = rle.present_pages();
  summary.swapped_pages = rle.swapped_pages();

  // Sections get at most a quarter of the block; the pagemap takes the rest.
  ContentBuffer& b = out;
  std::uint16_t flags = truncated ? kProcessSectionsTruncated : 0;
  std::size_t section_budget = b.capacity() / 4;
  std::size_t keep = s.sections.size();
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < s.sections.size(); ++i) {
    bytes += padded_size(sizeof(SectionRecord) + std::min(s.sections[i].path.size(), kMaxPath));
    if (bytes > section_budget) {
      keep = i;
      flags |= kProcessSectionsTruncated;
      break;
    }
  }
  encode_process(b, s.info, std::span(s.sections).first(keep), flags, collected, cycle);
  encode_pagemap(b, summary, s.chunks);
  b.finish();
  result.rle_bytes = s.chunks.size() * sizeof(RleChunk);
  return result;
}

}  // namespace haywire::beacon::companion
