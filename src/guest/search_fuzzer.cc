// Fuzz target: guest RAM scanning (the kernel banner extraction and pattern search) over
// arbitrary guest bytes. The RAM "file" is a FakeRamFile reused across inputs.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/search.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr std::size_t kRam = 64 * 1024;
  static haywire::guest::testing::FakeRamFile file(kRam, "fuzz", haywire::guest::testing::FakeRamFile::Lifetime::kUnlinked);
  auto guest = file.guest();
  std::memset(guest.data(), 0, kRam);
  std::memcpy(guest.data(), data, std::min(size, kRam));
  auto ram = haywire::guest::GuestRam::open(file.path());
  if (!ram) return 0;
  if (auto banner = haywire::guest::find_kernel_banner(*ram)) {
    if (banner->text.size() > 512) __builtin_trap();
    for (char c : banner->text)
      if (c < 0x20 || c > 0x7e) __builtin_trap();
  }
  // Patterns with zero bytes at either end exercise the hole-widening logic.
  const std::byte pattern[] = {std::byte{0}, std::byte{'L'}, std::byte{'i'}, std::byte{0}};
  auto hits = haywire::guest::find_all(*ram, pattern, 16);
  for (std::size_t i = 1; i < hits.size(); ++i)
    if (!(hits[i - 1] < hits[i])) __builtin_trap();
  return 0;
}
