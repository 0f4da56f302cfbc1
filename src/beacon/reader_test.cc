// The reader against a test-only writer (testing/area_writer.h) in a fake RAM file: discovery
// through scattered pages, merging, staleness, rediscovery, camera requests through GuestWriter,
// and tear detection with a writer thread.
#include "haywire/beacon/reader.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "beacon/testing/area_writer.h"
#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/writer.h"

namespace haywire::beacon {
namespace {

using guest::testing::FakeRamFile;
using testing::AreaWriter;
using testing::RecordWriter;
using namespace std::chrono_literals;

constexpr std::uint64_t kRam = 16 << 20;
constexpr std::uint32_t kAreaPages = 600;  // two table pages

// Area pages scattered over the file in a shuffled order (like a guest's physical frames).
std::vector<std::uint64_t> scattered(std::uint32_t pages, std::uint64_t seed, std::uint64_t first_frame = 16) {
  std::vector<std::uint64_t> frames(kRam / kPageSize - first_frame);
  std::iota(frames.begin(), frames.end(), first_frame);
  std::mt19937_64 rng(seed);
  std::shuffle(frames.begin(), frames.end(), rng);
  frames.resize(pages);
  for (auto& f : frames) f *= kPageSize;
  return frames;
}

struct Guest {
  FakeRamFile file{kRam, "beacon"};
  AreaWriter area;
  std::uint32_t pids_slot, rr_slot;
  explicit Guest(std::uint64_t seed = 1, std::uint64_t session = 0xabc)
      : area(file.guest(), scattered(kAreaPages, seed), session) {
    area.add_block(BlockType::kMaster, 1, 0, 0);  // slot 1 in this writer: the master is not read from it
    pids_slot = area.add_block(BlockType::kPids, 4);
    rr_slot = area.add_block(BlockType::kRoundRobin, 16);
    area.write_table();
  }
  void publish(std::span<const std::uint32_t> pids, std::uint64_t cycle) {
    RecordWriter w;
    w.pid_list(pids, cycle);
    area.write_block(pids_slot, w.bytes(), cycle * 10'000'000);
    RecordWriter rr;
    for (std::uint32_t pid : pids) {
      if (pid == 3) continue;  // not yet visited by the round robin
      rr.process({.pid = pid, .ppid = 1, .uid = pid == 1 ? 0u : 1000u, .threads = 1, .state = 'S', .rss_kb = pid * 4,
                  .collected_ns = cycle * 10'000'000 - 5'000'000, .comm = "proc" + std::to_string(pid),
                  .cmdline = "/bin/proc" + std::to_string(pid) + " --flag", .section_count = 1});
      rr.section(0x400000, 0x402000, "r-xp", 0, "/bin/proc");
    }
    area.write_block(rr_slot, rr.bytes(), cycle * 10'000'000);
    area.write_master(cycle, cycle * 10'000'000);
  }
};

TEST(BeaconReader, FindsTheMasterAndMergesProcesses) {
  Guest g;
  std::vector<std::uint32_t> pids{1, 2, 3};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  ASSERT_TRUE(ram.has_value());
  ScanStats stats;
  auto masters = scan_for_masters(*ram, &stats);
  ASSERT_EQ(masters.size(), 1u);
  EXPECT_EQ(masters[0].value(), g.area.master_pa());
  // Only pages ever written are visited: the rest of the file is holes.
  EXPECT_EQ(stats.pages_checked, 5u);  // master, 2 table pages, PID list, round robin
  EXPECT_EQ(stats.magic_hits, 5u);

  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value()) << reader.error().message();
  EXPECT_EQ(reader->master().session_id, 0xabcu);
  auto rows = reader->processes();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].pid, 1u);
  EXPECT_EQ(rows[0].source, Source::kRoundRobin);
  EXPECT_EQ(rows[0].comm, "proc1");
  EXPECT_EQ(rows[1].cmdline, "/bin/proc2 --flag");
  EXPECT_EQ(rows[1].uid, 1000u);
  ASSERT_TRUE(rows[1].age_ms.has_value());
  EXPECT_GE(*rows[1].age_ms, 5.0);  // collected 5 ms of guest time before the master's cycle
  EXPECT_EQ(rows[2].source, Source::kPidOnly);
  EXPECT_EQ(reader->pids(), pids);
  auto detail = reader->process(2);
  ASSERT_TRUE(detail.has_value());
  ASSERT_EQ(detail->process.sections.size(), 1u);
  EXPECT_EQ(detail->process.sections[0].path, "/bin/proc");
  EXPECT_FALSE(reader->process(3).has_value());
  for (const BlockState& b : reader->blocks()) {
    if (b.type == BlockType::kPids || b.type == BlockType::kRoundRobin) {
      EXPECT_EQ(b.status, "ok") << b.slot;
    }
  }
}

TEST(BeaconReader, AHintAtTheMasterSkipsTheScanAndAWrongHintFallsBackToIt) {
  Guest g;
  std::vector<std::uint32_t> pids{1, 2};
  g.publish(pids, 3);
  auto ram = guest::GuestRam::open(g.file.path());
  ASSERT_TRUE(ram.has_value());
  auto hinted = BeaconReader::discover(*ram, {}, PhysAddr(g.area.master_pa()));
  ASSERT_TRUE(hinted.has_value()) << hinted.error().message();
  EXPECT_EQ(hinted->master_address().value(), g.area.master_pa());
  EXPECT_EQ(hinted->pids().size(), 2u);
  // A hint at a page that is not the master (here the first page of the file), or past the
  // end of RAM, costs nothing but the scan.
  for (std::uint64_t wrong : {std::uint64_t{0}, std::uint64_t{1} << 40}) {
    auto fallback = BeaconReader::discover(*ram, {}, PhysAddr(wrong));
    ASSERT_TRUE(fallback.has_value()) << fallback.error().message();
    EXPECT_EQ(fallback->master_address().value(), g.area.master_pa());
  }
}

TEST(BeaconReader, FollowsNewGenerationsAndDropsExitedProcesses) {
  Guest g;
  std::vector<std::uint32_t> pids{1, 2, 3};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value());
  std::vector<std::uint32_t> fewer{1, 3};
  // Only the PID list moves on: the round-robin block still lists PID 2.
  RecordWriter w;
  w.pid_list(fewer, 6);
  g.area.write_block(g.pids_slot, w.bytes(), 60'000'000);
  g.area.write_master(6, 60'000'000);
  ASSERT_TRUE(reader->refresh().has_value());
  auto rows = reader->processes();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].pid, 3u);
  EXPECT_EQ(reader->master().cycle, 6u);
}

TEST(BeaconReader, ServesTheLastGoodCopyMarkedStale) {
  Guest g;
  std::vector<std::uint32_t> pids{1, 2};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  auto reader = BeaconReader::discover(*ram, ReaderOptions{.retries = 2});
  ASSERT_TRUE(reader.has_value());
  // Corrupt page 0 of the round-robin block mid-"rewrite": new generation, bad checksum.
  const auto rr_pa = g.area.page_pa(g.area.master().directory[g.rr_slot].first_page);
  PageHeader h;
  std::memcpy(&h, g.file.guest().data() + rr_pa, sizeof(h));
  h.generation += 1;
  std::memcpy(g.file.guest().data() + rr_pa, &h, sizeof(h));
  g.area.write_master(6, 60'000'000);
  ASSERT_TRUE(reader->refresh().has_value());
  auto rows = reader->processes();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].source, Source::kRoundRobin);
  EXPECT_TRUE(rows[0].stale);
  bool saw = false;
  for (const BlockState& b : reader->blocks()) {
    if (b.type != BlockType::kRoundRobin) continue;
    saw = true;
    EXPECT_TRUE(b.stale);
    EXPECT_EQ(b.status, "stale: checksum mismatch");
  }
  EXPECT_TRUE(saw);
}

TEST(BeaconReader, PicksTheNewestMasterAndRediscoversAfterARestart) {
  Guest g(1, 0x111);
  std::vector<std::uint32_t> pids{1, 2};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value());
  // A new companion elsewhere in RAM (the old master lingers, older by the guest clock).
  AreaWriter fresh(g.file.guest(), scattered(64, 99, 3000), 0x222);
  std::uint32_t pid_slot = fresh.add_block(BlockType::kPids, 2);
  fresh.write_table();
  RecordWriter w;
  std::vector<std::uint32_t> newer{1, 7};
  w.pid_list(newer, 1);
  fresh.write_block(pid_slot, w.bytes(), 900'000'000);
  fresh.write_master(1, 900'000'000);
  ASSERT_EQ(scan_for_masters(*ram).front().value(), fresh.master_pa());
  g.area.erase_master();
  ASSERT_TRUE(reader->refresh().has_value());
  EXPECT_EQ(reader->master().session_id, 0x222u);
  EXPECT_EQ(reader->rescans(), 1u);
  EXPECT_EQ(reader->pids(), newer);
  // Everything gone: a clear NotFound that says what to check.
  fresh.erase_master();
  auto gone = reader->refresh();
  ASSERT_FALSE(gone.has_value());
  EXPECT_TRUE(gone.error().is<NotFound>());
  EXPECT_NE(gone.error().message().find("haywire-companion"), std::string::npos) << gone.error().message();
}

// The discovery fuzz seed (written by a separate Python encoder of protocol.h) is a valid
// beacon: it keeps the fuzzer starting from deep inside the reader, and cross-checks the layout.
TEST(BeaconReader, ReadsTheDiscoveryFuzzSeed) {
  std::ifstream in(std::string(HAYWIRE_TESTDATA_DIR) + "/fuzz/beacon_discovery/area", std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), 64u * 1024);
  FakeRamFile file(bytes.size());
  std::memcpy(file.guest().data(), bytes.data(), bytes.size());
  auto ram = guest::GuestRam::open(file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value()) << reader.error().message();
  EXPECT_EQ(reader->pids(), (std::vector<std::uint32_t>{1, 5}));
  auto map = reader->pagemap(5);
  ASSERT_TRUE(map.has_value());
  EXPECT_EQ(map->present_pages, 2u);
  EXPECT_EQ(map->swapped_pages, 3u);
}

TEST(BeaconReader, NoBeaconIsNotFound) {
  FakeRamFile file(kRam);
  file.fill_random(3);
  auto ram = guest::GuestRam::open(file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_FALSE(reader.has_value());
  EXPECT_TRUE(reader.error().is<NotFound>());
}

TEST(BeaconReader, CameraRequestThroughTheGuardedWrite) {
  Guest g;
  std::vector<std::uint32_t> pids{1, 2, 3};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value());
  std::vector<guest::WriteRecord> log;
  auto writer = guest::GuestWriter::open(g.file.path(), {}, "test", [&](const guest::WriteRecord& r) { log.push_back(r); });
  ASSERT_TRUE(writer.has_value());

  // The companion's side: answer requests (PID 3 exists, PID 99 does not).
  std::atomic<bool> stop{false};
  std::thread companion([&] {
    std::uint32_t seen[kMaxCameras] = {};
    std::uint32_t camera_slot = 0;
    std::uint64_t cycle = 6;
    while (!stop) {
      for (std::uint32_t i = 0; i < kMaxCameras; ++i) {
        CameraRequest req = g.area.request(i);
        if (req.seq == seen[i]) continue;
        seen[i] = req.seq;
        CameraStatus& st = g.area.master().cameras[i];
        st.pid = req.pid;
        st.request_seq = req.seq;
        if (req.pid != 3) {
          st.state = static_cast<std::uint32_t>(CameraState::kProcessGone);
          continue;
        }
        if (camera_slot == 0) camera_slot = g.area.add_block(BlockType::kCamera, 8, i);
        RecordWriter w;
        w.process({.pid = 3, .comm = "proc3", .cmdline = "proc3", .section_count = 1,});
        w.section(0x10000, 0x20000, "rw-p", 0, "[heap]");
        std::vector<DecodedRun> runs{{RunType::kPresent, 0x10, 2, 0x500}, {RunType::kEmpty, 0x12, 14, 0}};
        w.pagemap(runs, 16);
        g.area.write_block(camera_slot, w.bytes(), cycle * 10'000'000);
        st.state = static_cast<std::uint32_t>(CameraState::kActive);
        st.directory_slot = camera_slot;
        st.generation = g.area.master().directory[camera_slot].last_valid_generation;
        st.data_pa = g.area.master().directory[camera_slot].first_page_pa;
      }
      ++cycle;
      g.area.write_master(cycle, cycle * 10'000'000);
      std::this_thread::sleep_for(1ms);
    }
  });
  auto ok = reader->request_camera(*writer, 3, 5, 5s);
  auto gone = reader->request_camera(*writer, 99, 1, 5s);
  stop = true;
  companion.join();
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(ok->state, CameraState::kActive);
  ASSERT_TRUE(gone.has_value()) << gone.error().message();
  EXPECT_EQ(gone->state, CameraState::kProcessGone);
  EXPECT_NE(gone->slot, ok->slot);
  // Priority then the {pid, seq} word, each through the logged write path.
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].length, 4u);
  EXPECT_EQ(log[1].length, 8u);
  EXPECT_EQ(log[1].addr.value(), g.area.master_pa() + kCameraRequestOffset + ok->slot * sizeof(CameraRequest));
  auto reqs = reader->camera_requests();
  EXPECT_EQ(reqs[ok->slot].pid, 3u);
  EXPECT_EQ(reqs[ok->slot].priority, 5u);

  auto map = reader->pagemap(3);
  ASSERT_TRUE(map.has_value());
  EXPECT_EQ(map->present_pages, 2u);
  EXPECT_EQ(map->empty_pages, 14u);
  ASSERT_EQ(map->present.size(), 1u);
  EXPECT_EQ(map->present[0].value, 0x500u);
  auto rows = reader->processes();
  auto it = std::find_if(rows.begin(), rows.end(), [](const ProcessRow& r) { return r.pid == 3; });
  ASSERT_NE(it, rows.end());
  EXPECT_EQ(it->source, Source::kCamera);
  auto detail = reader->process(3);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->source, Source::kCamera);
  EXPECT_EQ(detail->process.sections.at(0).path, "[heap]");
}

TEST(BeaconReader, CameraRequestTimesOutWhenNobodyAnswers) {
  Guest g;
  std::vector<std::uint32_t> pids{1};
  g.publish(pids, 5);
  auto ram = guest::GuestRam::open(g.file.path());
  auto reader = BeaconReader::discover(*ram);
  ASSERT_TRUE(reader.has_value());
  auto writer = guest::GuestWriter::open(g.file.path(), {}, "test", [](const guest::WriteRecord&) {});
  auto r = reader->request_camera(*writer, 1, 0, 30ms);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is<Timeout>());
}

// A writer thread rewrites a three-page block as fast as it can, each generation filled with its
// own number; readers must only ever see whole generations.
TEST(TearDetection, ReadersNeverSeeMixedGenerations) {
  Guest g;
  std::vector<std::uint32_t> pids{1};
  g.publish(pids, 1);
  auto ram = guest::GuestRam::open(g.file.path());
  const DirectoryEntry e = g.area.master().directory[g.pids_slot];
  std::vector<std::span<const std::byte>> spans;
  for (std::uint32_t k = 0; k < e.page_count; ++k) spans.push_back(*ram->read_pa(PhysAddr(g.area.page_pa(e.first_page + k)), kPageSize));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<std::uint32_t> fill(2500);
    for (std::uint32_t gen = 2; !stop; ++gen) {
      std::fill(fill.begin(), fill.end(), gen);
      RecordWriter w;
      w.pid_list(fill, gen);
      g.area.write_block(g.pids_slot, w.bytes(), gen);
    }
  });
  // A failed ASSERT returns early: stop and join the writer then too (a joinable thread's
  // destructor would abort the binary, leaving the fake RAM file behind).
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joiner() {
      stop = true;
      thread.join();
    }
  } joiner{stop, writer};
  std::uint64_t whole = 0, in_progress = 0;
  BlockCopy copy;
  const auto until = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < until || whole == 0) {
    auto r = copy_block(spans, {BlockType::kPids, g.pids_slot, 0}, copy);
    if (!r) {
      ASSERT_TRUE(r.error() == Invalid::kInProgress || r.error() == Invalid::kChecksum) << describe(r.error());
      ++in_progress;
      continue;
    }
    auto c = parse_records(copy.content);
    ASSERT_TRUE(c.has_value()) << describe(c.error());
    ASSERT_TRUE(c->pid_list.has_value());
    for (std::uint32_t pid : c->pid_list->pids) ASSERT_EQ(pid, c->pid_list->cycle) << "mixed generations";
    ++whole;
  }
  EXPECT_GT(whole, 0u);
  RecordProperty("whole_copies", static_cast<int>(whole));
  RecordProperty("in_progress", static_cast<int>(in_progress));
}

}  // namespace
}  // namespace haywire::beacon
