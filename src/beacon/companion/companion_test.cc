// The host-side companion writing into a file that stands in for guest RAM, read back the way
// the host reads it: a separate read-only mapping of the file, page headers and checksums
// checked by a strict local decoder.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "beacon/companion/testing/area_reader.h"
#include "haywire/beacon/companion.h"

namespace haywire::beacon {
namespace {

namespace fs = std::filesystem;
using testing::parse_records;
using testing::read_block;
using testing::read_master;

constexpr std::uint64_t kOffset = 64 * kPageSize;  // the area need not start the file

// A RAM file and a read-only view of it, like the host's.
class RamFile {
 public:
  explicit RamFile(std::size_t bytes) : size_(bytes) {
    char tmpl[] = "/tmp/haywire_companion_test_XXXXXX";
    fd_ = ::mkstemp(tmpl);
    path_ = tmpl;
    EXPECT_EQ(::ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    view_ = static_cast<const std::byte*>(::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd_, 0));
  }
  ~RamFile() {
    ::munmap(const_cast<std::byte*>(view_), size_);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::span<const std::byte> area(std::size_t bytes) const { return {view_ + kOffset, bytes}; }
  // The host's one write: priority, then {pid, seq} as one 8-byte store (GuestWriter's pwrite).
  void request_camera(int slot, std::uint32_t pid, std::uint32_t seq, std::uint32_t priority) const {
    off_t at = static_cast<off_t>(kOffset + kCameraRequestOffset + static_cast<std::size_t>(slot) * sizeof(CameraRequest));
    ASSERT_EQ(::pwrite(fd_, &priority, 4, at + 8), 4);
    std::uint64_t word = pid | (std::uint64_t{seq} << 32);
    ASSERT_EQ(::pwrite(fd_, &word, 8, at), 8);
  }
  const std::string& path() const { return path_; }

 private:
  std::size_t size_;
  int fd_ = -1;
  std::string path_;
  const std::byte* view_ = nullptr;
};

CompanionOptions small_options(const RamFile& ram, std::size_t area_bytes) {
  CompanionOptions o;
  o.ram_file = ram.path();
  o.ram_offset = kOffset;
  o.area_bytes = area_bytes;
  o.pid_pages = 4;
  o.rr_pages = 64;
  o.camera_pages = 32;
  o.rr_publish_every = 1;  // every cycle's refresh visible at once
  return o;
}

std::optional<testing::ParsedRecords> block_records(std::span<const std::byte> area, std::uint32_t slot,
                                                    std::uint32_t* generation = nullptr) {
  auto m = read_master(area);
  if (!m) return std::nullopt;
  std::string why;
  auto content = read_block(area, m->directory[slot], slot, &why);
  EXPECT_TRUE(content) << why;
  if (!content) return std::nullopt;
  EXPECT_EQ(content->generation, m->directory[slot].last_valid_generation);
  if (generation != nullptr) *generation = content->generation;
  auto records = parse_records(content->bytes, &why);
  EXPECT_TRUE(records) << why;
  return records;
}

// haywire-touch (the guest's static test program, no sanitizer shadow mappings) in a child:
// maps `pages` anonymous pages, touches `touched`, reports its base on stdout and waits.
struct Toucher {
  pid_t pid = -1;
  std::uint64_t base = 0;
  Toucher(std::size_t pages, const std::vector<std::size_t>& touched) {
    std::string list;
    for (std::size_t i : touched) list += (list.empty() ? "" : ",") + std::to_string(i);
    std::string count = std::to_string(pages);
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::execl(HAYWIRE_TOUCH_BIN, "haywire-touch", count.c_str(), list.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(p[1]);
    std::string line;
    char ch;
    while (::read(p[0], &ch, 1) == 1 && ch != '\n') line += ch;
    ::close(p[0]);
    auto at = line.find("base=0x");
    EXPECT_NE(at, std::string::npos) << line;
    if (at != std::string::npos) base = std::stoull(line.substr(at + 7), nullptr, 16);
  }
  void kill() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  ~Toucher() { kill(); }
};

TEST(Companion, PublishesMasterTableAndPidsIntoTheFile) {
  RamFile ram(4 << 20);
  auto c = Companion::start(small_options(ram, 1 << 20));
  ASSERT_TRUE(c) << c.error().message();
  auto area = ram.area(1 << 20);
  PageHeader mh{};
  auto m = read_master(area, &mh);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->area_pages, 256u);
  EXPECT_EQ(m->session_id, (*c)->session_id());
  EXPECT_TRUE(m->flags & kMasterRamFile);
  EXPECT_TRUE(m->flags & kMasterHasPhysicalFrames);
  // The page-address table: "physical" addresses are file offsets.
  auto table = read_block(area, m->directory[1], 1);
  ASSERT_TRUE(table);
  ASSERT_GE(table->bytes.size(), 256u * 8);
  for (std::uint32_t i = 0; i < 256; ++i)
    EXPECT_EQ(testing::load<std::uint64_t>(table->bytes, i * 8), kOffset + i * kPageSize);
  EXPECT_EQ(m->directory[2].first_page_pa, kOffset + m->directory[2].first_page * kPageSize);

  ASSERT_TRUE((*c)->run_cycle());
  auto pids = block_records(area, 2);
  ASSERT_TRUE(pids);
  EXPECT_TRUE(std::binary_search(pids->pids.begin(), pids->pids.end(), static_cast<std::uint32_t>(::getpid())));
  EXPECT_EQ(pids->pid_list.total, pids->pids.size());
  auto m2 = read_master(area);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->cycle, 1u);
  EXPECT_EQ(m2->directory[2].status, static_cast<std::uint32_t>(BlockStatus::kActive));
}

// A fake /proc: the round-robin block follows PIDs appearing, refreshing and vanishing.
TEST(Companion, RoundRobinFollowsProcessesAndDropsTheDead) {
  fs::path root = fs::temp_directory_path() / ("haywire_fake_proc_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto make = [&](int pid, const std::string& comm) {
    fs::create_directories(root / std::to_string(pid));
    std::ofstream(root / std::to_string(pid) / "stat")
        << pid << " (" << comm << ") S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1048576 16";
    std::ofstream(root / std::to_string(pid) / "status") << "Uid:\t7\t7\t7\t7\nGid:\t8\t8\t8\t8\n";
    std::ofstream(root / std::to_string(pid) / "cmdline") << comm << '\0' << "--x" << '\0';
    std::ofstream(root / std::to_string(pid) / "maps") << "400000-401000 r-xp 00000000 00:00 0 /bin/" << comm << "\n";
  };
  make(10, "ten");
  make(20, "twenty");
  make(30, "odd) name");
  RamFile ram(2 << 20);
  auto o = small_options(ram, 1 << 20);
  o.proc_root = root.string();
  auto c = Companion::start(o);
  ASSERT_TRUE(c);
  auto area = ram.area(1 << 20);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*c)->run_cycle());
  auto rr = block_records(area, 3);
  ASSERT_TRUE(rr);
  ASSERT_EQ(rr->processes.size(), 3u);
  EXPECT_EQ(rr->processes[0].record.pid, 10u);
  EXPECT_EQ(rr->processes[0].record.uid, 7u);
  EXPECT_EQ(rr->processes[0].cmdline, "ten --x");
  EXPECT_STREQ(rr->processes[2].record.comm, "odd) name");
  ASSERT_EQ(rr->processes[1].sections.size(), 1u);
  EXPECT_EQ(rr->processes[1].sections[0].second, "/bin/twenty");

  // 20 dies: gone from the PID list and the round-robin table after the next cycle.
  fs::remove_all(root / "20");
  std::uint32_t gen_before = 0, gen_after = 0;
  block_records(area, 2, &gen_before);
  ASSERT_TRUE((*c)->run_cycle());
  auto pids = block_records(area, 2, &gen_after);
  EXPECT_EQ(gen_after, gen_before + 1);
  EXPECT_EQ(pids->pids, (std::vector<std::uint32_t>{10, 30}));
  rr = block_records(area, 3);
  ASSERT_EQ(rr->processes.size(), 2u);
  EXPECT_EQ(rr->processes[1].record.pid, 30u);

  // Odd content never crashes: garbage stat is skipped, an empty dir is a process without data.
  fs::create_directories(root / "40");
  std::ofstream(root / "40" / "stat") << "garbage (((";
  fs::create_directories(root / "50");
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*c)->run_cycle());
  rr = block_records(area, 3);
  for (const auto& p : rr->processes) EXPECT_TRUE(p.record.pid == 10 || p.record.pid == 30);
  fs::remove_all(root);
}

TEST(Companion, CameraRequestGivesStatusThenPagemapOfTouchedPages) {
  std::vector<std::size_t> touched = {0, 1, 5, 17, 18, 19, 40, 63};
  Toucher child(64, touched);
  RamFile ram(2 << 20);
  auto c = Companion::start(small_options(ram, 1 << 20));
  ASSERT_TRUE(c);
  auto area = ram.area(1 << 20);
  ram.request_camera(3, static_cast<std::uint32_t>(child.pid), 1, 5);
  ASSERT_TRUE((*c)->run_cycle());
  auto m = read_master(area);
  ASSERT_TRUE(m);
  const CameraStatus st = m->cameras[3];
  EXPECT_EQ(st.pid, static_cast<std::uint32_t>(child.pid));
  EXPECT_EQ(st.state, static_cast<std::uint32_t>(CameraState::kActive));
  EXPECT_EQ(st.request_seq, 1u);
  ASSERT_GE(st.directory_slot, 4u);
  EXPECT_EQ(st.data_pa, kOffset + m->directory[st.directory_slot].first_page * kPageSize);
  EXPECT_EQ(st.generation, m->directory[st.directory_slot].last_valid_generation);
  auto cam = block_records(area, st.directory_slot);
  ASSERT_TRUE(cam);
  ASSERT_EQ(cam->processes.size(), 1u);
  EXPECT_EQ(cam->processes[0].record.pid, static_cast<std::uint32_t>(child.pid));
  EXPECT_FALSE(cam->processes[0].sections.empty());
  ASSERT_TRUE(cam->pagemap);
  std::vector<DecodedPage> pages;
  ASSERT_TRUE(decode_rle_chunks(cam->chunks, pages));
  std::set<std::size_t> present;
  std::uint64_t base_page = child.base / kPageSize;
  std::size_t seen = 0;
  for (const auto& p : pages) {
    if (p.page < base_page || p.page >= base_page + 64) continue;
    ++seen;
    if (p.type == RunType::kPresent) present.insert(static_cast<std::size_t>(p.page - base_page));
  }
  EXPECT_EQ(seen, 64u);
  EXPECT_EQ(present, std::set<std::size_t>(touched.begin(), touched.end()));
  EXPECT_EQ(cam->pagemap->mapped_pages, [&] {
    std::uint64_t n = 0;
    for (const auto& s : cam->processes[0].sections) n += (s.first.end - s.first.start) / kPageSize;
    return n;
  }());

  // The process dies: the next cycle says so and invalidates the block.
  child.kill();
  ASSERT_TRUE((*c)->run_cycle());
  m = read_master(area);
  EXPECT_EQ(m->cameras[3].state, static_cast<std::uint32_t>(CameraState::kProcessGone));
  EXPECT_EQ(m->directory[st.directory_slot].status, static_cast<std::uint32_t>(BlockStatus::kInvalid));

  // Release: pid 0 returns the slot to idle.
  ram.request_camera(3, 0, 2, 0);
  ASSERT_TRUE((*c)->run_cycle());
  m = read_master(area);
  EXPECT_EQ(m->cameras[3].state, static_cast<std::uint32_t>(CameraState::kIdle));
  EXPECT_EQ(m->cameras[3].request_seq, 2u);
}

TEST(Companion, CamerasRecycleLowestPriorityThenOldest) {
  Toucher a(4, {0}), b(4, {1}), d(4, {2});
  RamFile ram(2 << 20);
  auto o = small_options(ram, 1 << 20);
  // 256 pages: master + table + 4 + 64 + 2 x 32 pre-allocated leaves 122 free: 3 more cameras.
  o.camera_pages = 80;  // 2 x 80 pre-allocated, no room for a third
  auto c = Companion::start(o);
  ASSERT_TRUE(c) << c.error().message();
  auto area = ram.area(1 << 20);
  auto state = [&](int slot) { return static_cast<CameraState>(read_master(area)->cameras[slot].state); };
  ram.request_camera(0, static_cast<std::uint32_t>(a.pid), 1, 1);
  ram.request_camera(1, static_cast<std::uint32_t>(b.pid), 1, 9);
  ASSERT_TRUE((*c)->run_cycle());
  EXPECT_EQ(state(0), CameraState::kActive);
  EXPECT_EQ(state(1), CameraState::kActive);
  // A low-priority request cannot take a block from higher priorities...
  ram.request_camera(2, static_cast<std::uint32_t>(d.pid), 1, 0);
  ASSERT_TRUE((*c)->run_cycle());
  EXPECT_EQ(state(2), CameraState::kNoCapacity);
  // ...a higher one takes the lowest-priority camera's block.
  ram.request_camera(2, static_cast<std::uint32_t>(d.pid), 2, 5);
  ASSERT_TRUE((*c)->run_cycle());
  EXPECT_EQ(state(2), CameraState::kActive);
  EXPECT_EQ(state(0), CameraState::kNoCapacity);
  EXPECT_EQ(state(1), CameraState::kActive);
  // Releasing one lets the waiting camera back in.
  ram.request_camera(1, 0, 2, 0);
  ASSERT_TRUE((*c)->run_cycle());
  ASSERT_TRUE((*c)->run_cycle());
  EXPECT_EQ(state(1), CameraState::kIdle);
  EXPECT_EQ(state(0), CameraState::kActive);
  auto m = read_master(area);
  auto cam = block_records(area, m->cameras[0].directory_slot);
  ASSERT_TRUE(cam);
  EXPECT_EQ(cam->processes.at(0).record.pid, static_cast<std::uint32_t>(a.pid));
}

TEST(Companion, ProcessesDyingDuringCyclesNeverBreakTheBeacon) {
  RamFile ram(2 << 20);
  auto c = Companion::start(small_options(ram, 1 << 20));
  ASSERT_TRUE(c);
  auto area = ram.area(1 << 20);
  for (int round = 0; round < 20; ++round) {
    Toucher t(16, {0, 3});
    ram.request_camera(round % 4, static_cast<std::uint32_t>(t.pid), static_cast<std::uint32_t>(round + 1), 1);
    pid_t shortlived = ::fork();
    if (shortlived == 0) _exit(0);  // exits while the companion may be reading it
    ASSERT_TRUE((*c)->run_cycle());
    t.kill();
    ::waitpid(shortlived, nullptr, 0);
    ASSERT_TRUE((*c)->run_cycle());
    auto m = read_master(area);
    ASSERT_TRUE(m);
    EXPECT_NE(m->cameras[round % 4].state, static_cast<std::uint32_t>(CameraState::kActive));
    auto pids = block_records(area, 2);
    ASSERT_TRUE(pids);
    EXPECT_FALSE(std::binary_search(pids->pids.begin(), pids->pids.end(), static_cast<std::uint32_t>(shortlived)));
    EXPECT_TRUE(block_records(area, 3));
  }
}

TEST(Companion, RejectsBadOptions) {
  RamFile ram(1 << 20);
  auto o = small_options(ram, 4 << 20);  // larger than the file
  EXPECT_FALSE(Companion::start(o));
  o = small_options(ram, 256 << 10);
  o.ram_offset = 100;  // not page-aligned
  EXPECT_FALSE(Companion::start(o));
  o = small_options(ram, 128 << 10);  // too small for the blocks
  o.ram_offset = 0;
  auto r = Companion::start(o);
  ASSERT_FALSE(r);
  EXPECT_NE(companion_error_text(r.error()).find("too small"), std::string::npos);
}

}  // namespace
}  // namespace haywire::beacon
