// End to end on the host: the real companion code (--ram-file mode, area in a plain file where
// guest-physical address = file offset) writes; the reader discovers and follows it; a camera
// request through GuestWriter gets a status and data.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"
#include "haywire/beacon/companion.h"
#include "haywire/beacon/reader.h"
#include "haywire/guest/writer.h"

namespace haywire::beacon {
namespace {

using namespace std::chrono_literals;

TEST(ReaderWithCompanion, FollowsTheHostSideCompanionAndGetsACamera) {
  guest::testing::FakeRamFile file(32 << 20, "companion");
  CompanionOptions options;
  options.ram_file = file.path();
  options.ram_offset = 4 << 20;
  options.interval_ms = 2;
  auto companion = Companion::start(options);
  ASSERT_TRUE(companion.has_value()) << companion_error_text(companion.error());
  ASSERT_TRUE((*companion)->run_cycle().has_value());

  auto ram = guest::GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value()) << reader.error().message();
  EXPECT_EQ(reader->master().session_id, (*companion)->session_id());
  EXPECT_EQ(reader->master().pa.value(), options.ram_offset);
  const auto self = static_cast<std::uint32_t>(::getpid());
  const auto& pids = reader->pids();
  EXPECT_NE(std::find(pids.begin(), pids.end(), self), pids.end()) << "the PID list holds this test";

  std::atomic<bool> stop{false};
  std::thread cycles([&] { (*companion)->run(stop); });
  auto writer = guest::GuestWriter::open(file.path(), {}, "reader_companion_test", [](const guest::WriteRecord&) {});
  ASSERT_TRUE(writer.has_value());
  auto outcome = reader->request_camera(*writer, self, 1, 10s);
  auto gone = reader->request_camera(*writer, 0x7ffffff0, 1, 10s);  // no such PID
  stop = true;
  cycles.join();
  ASSERT_TRUE(outcome.has_value()) << outcome.error().message();
  EXPECT_EQ(outcome->state, CameraState::kActive);
  ASSERT_TRUE(gone.has_value()) << gone.error().message();
  EXPECT_EQ(gone->state, CameraState::kProcessGone);
  auto map = reader->pagemap(self);
  ASSERT_TRUE(map.has_value());
  EXPECT_GT(map->mapped_pages, 0u);
  // Under ASan the process maps terabytes of shadow: the camera is windowed and its first window
  // may hold nothing resident. Unsanitized, this process has resident pages.
  if (!map->windowed) {
    EXPECT_GT(map->resident_pages, 0u);
  }
  EXPECT_GT(map->encoded_bytes, 0u);
  auto detail = reader->process(self);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->source, Source::kCamera);
  EXPECT_FALSE(detail->process.sections.empty());
  for (const BlockState& b : reader->blocks()) EXPECT_FALSE(b.status.starts_with("invalid")) << b.slot << " " << b.status;
}

}  // namespace
}  // namespace haywire::beacon
