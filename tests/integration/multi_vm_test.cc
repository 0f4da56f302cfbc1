// Several VMs at once: each sees only its own RAM; RAM above 4 GiB is read where QEMU puts
// it; `vm down` leaves nothing behind.
#include <cstring>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "haywire/guest/ram.h"
#include "haywire/guest/search.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/image.h"

namespace haywire::itest {
namespace {

struct Vms : public ::testing::Environment {
  static inline std::vector<vm::VmInfo> infos;
  void SetUp() override {
    // The third VM has 3 GiB: on q35 its RAM above 2 GiB lives at guest-physical 4 GiB.
    const std::vector<std::pair<std::string, std::uint64_t>> specs = {
        {unique_name("multi-a"), 256ull << 20}, {unique_name("multi-b"), 256ull << 20}, {unique_name("multi-c"), 3ull << 30}};
    infos.resize(specs.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < specs.size(); ++i)
      threads.emplace_back([&, i] { infos[i] = boot(specs[i].first, specs[i].second, "mk" + std::to_string(i) + "-" + std::to_string(::getpid())); });
    for (auto& t : threads) t.join();
  }
  void TearDown() override {
    for (const auto& info : infos)
      if (std::filesystem::exists(info.run_dir)) (void)vm::down(info.name);
  }
};

std::span<const std::byte> as_bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

TEST(MultiVm, EachVmSeesOnlyItsOwnMarker) {
  auto& infos = Vms::infos;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    auto ram = guest::GuestRam::open(infos[i].mem_path, infos[i].mem_size, infos[i].layout);
    ASSERT_TRUE(ram.has_value()) << ram.error().message();
    // One pass over RAM for every marker line, then classify the hits by whose pattern they start.
    auto hits = guest::find_all(*ram, as_bytes(std::string("HAYWIRE-MARKER:mk")), 1000);
    std::vector<int> whole(infos.size(), 0);
    for (PhysAddr hit : hits)
      for (std::size_t j = 0; j < infos.size(); ++j) {
        std::string pattern = vm::marker_pattern(infos[j].marker);
        auto bytes = ram->read_pa(hit, pattern.size());
        if (bytes && std::memcmp(bytes->data(), pattern.data(), pattern.size()) == 0) ++whole[j];
      }
    for (std::size_t j = 0; j < infos.size(); ++j) {
      if (i == j) EXPECT_GT(whole[j], 0) << infos[i].name << " lacks its own marker";
      else EXPECT_EQ(whole[j], 0) << infos[i].name << " shows " << infos[j].name << "'s marker";
    }
  }
}

TEST(MultiVm, ReadsFromThreeVmsInParallelStayApart) {
  auto& infos = Vms::infos;
  std::vector<int> failures(infos.size(), 0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    threads.emplace_back([&, i] {
      auto ram = guest::GuestRam::open(infos[i].mem_path, infos[i].mem_size, infos[i].layout);
      if (!ram) { ++failures[i]; return; }
      std::string mine = vm::marker_pattern(infos[i].marker);
      auto hits = guest::find_all(*ram, as_bytes(mine), 1);
      if (hits.empty()) { ++failures[i]; return; }
      for (int k = 0; k < 2000; ++k) {
        auto v = ram->read_pa(hits[0], mine.size());
        if (!v || std::memcmp(v->data(), mine.data(), mine.size()) != 0) ++failures[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(MultiVm, RamAboveFourGibMatchesQemu) {
  const auto& big = Vms::infos[2];
  ASSERT_EQ(big.layout.regions().size(), 2u);
  EXPECT_EQ(big.layout.regions()[0].size, 2ull << 30);  // q35: 2 GiB below the PCI hole
  EXPECT_EQ(big.layout.regions()[1].start, PhysAddr(4ull << 30));
  EXPECT_EQ(big.layout.regions()[1].file_offset, 2ull << 30);
  auto ram = guest::GuestRam::open(big.mem_path, big.mem_size, big.layout);
  ASSERT_TRUE(ram.has_value());
  auto client = qmp::Client::connect(big.qmp, 5s);
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(qmp::stop(*client).has_value());
  // Compare non-zero pages above 4 GiB (the kernel allocates from the top) and a few zero ones.
  int nonzero = 0, compared = 0;
  const RamRegion& high = big.layout.regions()[1];
  for (std::uint64_t off = 0; off < high.size && compared < 300; off += 997 * 4096) {
    PhysAddr pa = high.start + off;
    auto ours = ram->read_pa(pa, 64);
    ASSERT_TRUE(ours.has_value());
    auto theirs = qemu_xp(*client, pa.value(), 64);
    ASSERT_TRUE(theirs.has_value());
    bool any = false;
    for (int i = 0; i < 64; ++i) {
      ASSERT_EQ(static_cast<unsigned char>((*ours)[static_cast<std::size_t>(i)]), (*theirs)[static_cast<std::size_t>(i)]) << std::hex << pa.value();
      any = any || (*theirs)[static_cast<std::size_t>(i)] != 0;
    }
    nonzero += any ? 1 : 0;
    ++compared;
  }
  // And wherever guest-physical 4 GiB+ holds data, the file has it at 2 GiB+.
  std::uint64_t scanned = 0;
  for (std::uint64_t off = 0; off < high.size && nonzero == 0; off += 4096, ++scanned) {
    auto page = ram->read_pa(high.start + off, 4096);
    bool any = false;
    for (std::byte b : *page) any = any || b != std::byte{0};
    if (!any) continue;
    auto theirs = qemu_xp(*client, (high.start + off).value(), 64);
    ASSERT_TRUE(theirs.has_value());
    for (int i = 0; i < 64; ++i) ASSERT_EQ(static_cast<unsigned char>((*page)[static_cast<std::size_t>(i)]), (*theirs)[static_cast<std::size_t>(i)]);
    ++nonzero;
  }
  ASSERT_TRUE(qmp::cont(*client).has_value());
  EXPECT_GT(nonzero, 0) << "no data above 4 GiB to compare after " << scanned << " pages";
}

TEST(MultiVm, VmDownLeavesNothingBehind) {
  auto r = run_cli({"vm", "ls", "--json"});
  ASSERT_EQ(r.exit_code, 0);
  int ours = 0;
  for (const auto& v : nlohmann::json::parse(r.out))
    for (const auto& info : Vms::infos)
      if (v["name"] == info.name && v["status"] == "running") ++ours;
  EXPECT_EQ(ours, 3);
  for (const auto& info : Vms::infos) {
    auto down = run_cli({"vm", "down", info.name});
    EXPECT_EQ(down.exit_code, 0) << down.err;
    EXPECT_FALSE(std::filesystem::exists(info.mem_path));
    EXPECT_FALSE(std::filesystem::exists(info.run_dir));
    EXPECT_FALSE(vm::is_vm_process(info.pid, info.mem_path));
  }
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
    for (const auto& info : Vms::infos) EXPECT_NE(entry.path().string(), info.mem_path);
}

TEST(MultiVm, DownAfterQemuCrashedStillCleansUp) {
  auto info = boot(unique_name("crash"), 128ull << 20);
  ASSERT_EQ(::kill(info.pid, SIGKILL), 0);
  for (int i = 0; i < 100 && vm::is_vm_process(info.pid, info.mem_path); ++i) std::this_thread::sleep_for(20ms);
  auto ls = run_cli({"vm", "ls", "--json"});
  bool gone = false;
  for (const auto& v : nlohmann::json::parse(ls.out))
    if (v["name"] == info.name) gone = v["status"] == "gone";
  EXPECT_TRUE(gone);
  auto down = run_cli({"vm", "down", info.name});
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_FALSE(std::filesystem::exists(info.mem_path));
  EXPECT_FALSE(std::filesystem::exists(info.run_dir));
}

}  // namespace
}  // namespace haywire::itest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new haywire::itest::Vms);  // NOLINT: gtest owns it
  return RUN_ALL_TESTS();
}
