// Fuzz target: discovery and a full reader pass over a small guest RAM whose pages come from
// the input (each input byte run seeds a page). Exercises the master decoder, the page-address
// table chain and every block read with hostile directory entries and addresses.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "guest/testing/fake_ram_file.h"
#include "haywire/beacon/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace haywire;
  static constexpr std::size_t kRam = 64 * 1024;
  static guest::testing::FakeRamFile file(kRam, "bfuzz", guest::testing::FakeRamFile::Lifetime::kUnlinked);
  auto guest_bytes = file.guest();
  std::memset(guest_bytes.data(), 0, kRam);
  std::memcpy(guest_bytes.data(), data, std::min(size, kRam));
  auto ram = guest::GuestRam::open(file.path());
  if (!ram) return 0;
  auto reader = beacon::BeaconReader::discover(*ram, beacon::ReaderOptions{.retries = 1});
  if (!reader) return 0;
  (void)reader->refresh();
  auto rows = reader->processes();
  if (rows.size() > kRam) __builtin_trap();
  for (const auto& b : reader->blocks()) (void)b;
  for (const auto& r : rows) (void)reader->process(r.pid), (void)reader->pagemap(r.pid);
  return 0;
}
