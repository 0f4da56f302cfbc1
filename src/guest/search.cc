#include "haywire/guest/search.h"

#include <algorithm>
#include <cstring>
#include <string_view>

namespace haywire::guest {

std::vector<PhysAddr> find_all(const GuestRam& ram, std::span<const std::byte> pattern,
                               std::size_t max_hits) {
  std::vector<PhysAddr> hits;
  if (pattern.empty() || max_hits == 0) return hits;
  const auto file = ram.file_bytes();
  // Holes in the file are zeros and are not read (reading would allocate them). A match can
  // reach into a hole only with the pattern's leading or trailing zero bytes, so each data
  // range is widened by exactly that much.
  std::size_t lead = 0, trail = 0;
  while (lead < pattern.size() && pattern[lead] == std::byte{0}) ++lead;
  while (trail < pattern.size() && pattern[pattern.size() - 1 - trail] == std::byte{0}) ++trail;
  if (lead == pattern.size()) return hits;  // all zeros: every hole matches; not a useful search

  const auto data = ram.data_ranges();
  for (const RamRegion& region : ram.layout().regions()) {
    const std::uint64_t region_end = region.file_offset + region.size;
    for (const FileRange& range : data) {
      std::uint64_t from = std::max(region.file_offset, range.offset >= lead ? range.offset - lead : 0);
      std::uint64_t to = std::min(region_end, range.offset + range.length + trail);
      if (from >= to) continue;
      const std::byte* window = file.data() + from;
      const std::uint64_t window_len = to - from;
      std::uint64_t at = 0;
      while (at + pattern.size() <= window_len) {
        const void* found = ::memmem(window + at, window_len - at, pattern.data(), pattern.size());
        if (found == nullptr) break;
        auto offset = static_cast<std::uint64_t>(static_cast<const std::byte*>(found) - window);
        PhysAddr hit = region.start + (from + offset - region.file_offset);
        // Widened windows of neighbouring ranges can overlap: report each address once.
        if (hits.empty() || hits.back() < hit) hits.push_back(hit);
        if (hits.size() >= max_hits) return hits;
        at = offset + 1;
      }
    }
  }
  return hits;
}

std::optional<KernelBanner> find_kernel_banner(const GuestRam& ram) {
  static constexpr std::string_view kPrefix = "Linux version ";
  static constexpr std::size_t kMaxBanner = 512;
  auto prefix = std::as_bytes(std::span(kPrefix.data(), kPrefix.size()));
  // The prefix also appears in strings that are not the banner (log text, format strings);
  // the banner is the first one that continues with a version and "(" and ends in a newline.
  for (PhysAddr hit : find_all(ram, prefix, 64)) {
    auto view = ram.read_pa(hit, 1);
    if (!view) continue;
    std::string text;
    bool ended = false;
    for (std::size_t i = 0; i < kMaxBanner; ++i) {
      auto byte = ram.read_pa(hit + i, 1);
      if (!byte) break;
      auto c = static_cast<unsigned char>((*byte)[0]);
      if (c == '\n' || c == 0) {
        ended = true;
        break;
      }
      if (c < 0x20 || c > 0x7e) break;
      text.push_back(static_cast<char>(c));
    }
    if (!ended || text.size() < kPrefix.size() + 8) continue;
    char first = text[kPrefix.size()];
    if (first < '0' || first > '9' || text.find(" (") == std::string::npos) continue;
    return KernelBanner{hit, std::move(text)};
  }
  return std::nullopt;
}

}  // namespace haywire::guest
