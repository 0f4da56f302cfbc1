// Fuzz target: /proc/PID/maps text (the same bytes also parsed as statm and stat). Paths are
// chosen by the target process, so the parser must never crash, and whatever it accepts must be
// sorted, non-overlapping and page-aligned.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "haywire/glass/maps.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // statm and stat, read by the same tracker: counters or an error, never a crash.
  (void)haywire::glass::parse_statm(text);
  (void)haywire::glass::parse_stat_threads(text);
  // The lenient form (what read_maps falls back to) must hold the same invariants.
  std::size_t out_of_order = 0;
  auto lenient = haywire::glass::parse_maps(text, &out_of_order);
  auto regions = haywire::glass::parse_maps(text);
  if (regions && (!lenient || out_of_order != 0 || lenient->size() != regions->size())) std::abort();
  if (!regions) regions = std::move(lenient);
  if (!regions) return 0;
  std::uint64_t previous_end = 0;
  for (const auto& r : *regions) {
    if (r.start >= r.end || r.start.value() < previous_end || r.permissions.size() != 4) std::abort();
    if (r.start.value() % haywire::kPageSize != 0 || r.end.value() % haywire::kPageSize != 0) std::abort();
    (void)haywire::glass::is_trackable(r);
    previous_end = r.end.value();
  }
  (void)haywire::glass::trackable_regions(*regions);
  return 0;
}
