// The guest-RAM bridge against a real guest: our bytes agree with QEMU's own `xp`, the guest's
// marker is found, snapshots and the CLI work end to end. One VM for the whole binary.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "haywire/guest/ram.h"
#include "haywire/guest/search.h"
#include "haywire/guest/snapshot.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/attach.h"
#include "haywire/vm/image.h"

namespace haywire::itest {
namespace {

using Json = nlohmann::json;

qmp::Client connect() {
  auto c = qmp::Client::connect(vmi().qmp, 5s);
  EXPECT_TRUE(c.has_value()) << c.error().message();
  return std::move(*c);
}

// Pauses the VM for the scope so that both readers see the same bytes.
struct Paused {
  explicit Paused(qmp::Client& c) : client(c) { EXPECT_TRUE(qmp::stop(client).has_value()); }
  ~Paused() { EXPECT_TRUE(qmp::cont(client).has_value()); }
  qmp::Client& client;
};

std::optional<std::uint64_t> kernel_text_pa(qmp::Client& client) {
  auto regs = client.hmp("info registers", 0);
  if (!regs) return std::nullopt;
  std::smatch m;
  if (!std::regex_search(*regs, m, std::regex("RIP=([0-9a-f]{16})"))) return std::nullopt;
  auto gpa = client.hmp("gva2gpa 0x" + m[1].str(), 0);
  if (!gpa) return std::nullopt;
  std::smatch g;
  if (!std::regex_search(*gpa, g, std::regex("gpa: 0x([0-9a-f]+)"))) return std::nullopt;
  auto v = parse_hex(g[1].str());
  return v ? std::optional(*v) : std::nullopt;
}

void expect_same_as_qemu(qmp::Client& client, const guest::GuestRam& ram, std::uint64_t pa, int n, const char* what) {
  auto ours = ram.read_pa(PhysAddr(pa), static_cast<std::uint64_t>(n));
  ASSERT_TRUE(ours.has_value()) << what << ": " << ours.error().message();
  auto theirs = qemu_xp(client, pa, n);
  ASSERT_TRUE(theirs.has_value()) << what << ": xp failed at " << std::hex << pa;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(static_cast<unsigned char>((*ours)[static_cast<std::size_t>(i)]), (*theirs)[static_cast<std::size_t>(i)])
        << what << " differs at 0x" << std::hex << pa + static_cast<std::uint64_t>(i);
}

TEST(Bridge, ReadPaAgreesWithQemuXpAtManyAddresses) {
  auto ram = open_ram();
  auto client = connect();
  Paused paused(client);

  auto text = kernel_text_pa(client);
  ASSERT_TRUE(text.has_value()) << "no kernel RIP/gva2gpa from QEMU";
  expect_same_as_qemu(client, ram, *text & ~0xfffull, 256, "kernel text page");
  expect_same_as_qemu(client, ram, *text, 64, "kernel text at RIP");

  auto banner = guest::find_kernel_banner(ram);
  ASSERT_TRUE(banner.has_value());
  expect_same_as_qemu(client, ram, banner->where.value(), 64, "kernel banner");

  std::string marker = vm::marker_pattern(vmi().marker);
  auto hits = guest::find_all(ram, std::as_bytes(std::span(marker.data(), marker.size())), 4);
  ASSERT_FALSE(hits.empty());
  expect_same_as_qemu(client, ram, hits[0].value(), 128, "marker page");

  std::uint64_t end = ram.layout().end();
  expect_same_as_qemu(client, ram, end - 4096, 256, "first bytes of the last page");
  expect_same_as_qemu(client, ram, end - 64, 64, "last bytes of RAM");

  // Random addresses over all RAM regions (skipping the legacy VGA/ROM window below 1 MiB).
  std::mt19937_64 rng(12345);
  int compared = 0;
  for (const RamRegion& r : ram.layout().regions()) {
    for (int i = 0; i < 150; ++i) {
      std::uint64_t pa = r.start.value() + (rng() % (r.size - 64));
      if (pa < 0x100000) continue;
      expect_same_as_qemu(client, ram, pa, 32, "random address");
      ++compared;
    }
  }
  EXPECT_GT(compared, 100);
}

TEST(Bridge, AddressesPastTheEndAreRejected) {
  auto ram = open_ram();
  std::uint64_t end = ram.layout().end();
  auto past = ram.read_pa(PhysAddr(end - 8), 16);
  ASSERT_FALSE(past.has_value());
  ASSERT_NE(past.error().as<InvalidAddress>(), nullptr);
  EXPECT_EQ(past.error().as<InvalidAddress>()->max, end);
}

TEST(Bridge, MarkerIsFoundByMemFind) {
  auto r = run_cli({"mem", "find", vmi().name, "HAYWIRE-MARKER:" + vmi().marker + ":0000", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  ASSERT_FALSE(j["hits"].empty());
  // At least one hit is the start of the whole 4 KiB pattern (the tmpfs file's page).
  auto ram = open_ram();
  std::string marker = vm::marker_pattern(vmi().marker);
  bool whole = false;
  for (const auto& h : j["hits"]) {
    auto pa = parse_u64(h.get<std::string>());
    ASSERT_TRUE(pa.has_value());
    auto bytes = ram.read_pa(PhysAddr(*pa), marker.size());
    if (bytes && std::memcmp(bytes->data(), marker.data(), marker.size()) == 0) whole = true;
  }
  EXPECT_TRUE(whole);
}

TEST(Bridge, CliReadsTheSameBytesByNameAndByQmpSocket) {
  auto ram = open_ram();
  auto banner = guest::find_kernel_banner(ram);
  ASSERT_TRUE(banner.has_value());
  std::string pa = fmt::format("0x{:x}", banner->where.value());
  auto by_name = run_cli({"mem", "read", vmi().name, "--pa", pa, "--len", "64", "--format", "raw"});
  ASSERT_EQ(by_name.exit_code, 0) << by_name.err;
  ASSERT_EQ(by_name.out.size(), 64u);
  EXPECT_EQ(by_name.out.substr(0, 14), "Linux version ");
  auto by_qmp = run_cli({"mem", "read", "--qmp", vmi().qmp, "--pa", pa, "--len", "64", "--format", "raw"});
  ASSERT_EQ(by_qmp.exit_code, 0) << by_qmp.err;
  EXPECT_EQ(by_qmp.out, by_name.out);
  auto json = run_cli({"mem", "read", vmi().name, "--pa", pa, "--len", "4", "--format", "json"});
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_EQ(Json::parse(json.out)["hex"], "4c696e75");  // "Linu"
  auto hexdump = run_cli({"mem", "read", vmi().name, "--pa", pa, "--len", "16"});
  EXPECT_NE(hexdump.out.find("|Linux version "), std::string::npos);
}

TEST(Bridge, CliErrorsAreOneClearLine) {
  auto past = run_cli({"mem", "read", vmi().name, "--pa", fmt::format("0x{:x}", vmi().layout.end()), "--len", "16"});
  EXPECT_EQ(past.exit_code, 1);
  EXPECT_NE(past.err.find("invalid guest-physical range"), std::string::npos);
  EXPECT_EQ(std::count(past.err.begin(), past.err.end(), '\n'), 1);
  auto unknown = run_cli({"mem", "read", "no-such-vm", "--pa", "0", "--len", "16"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no VM named 'no-such-vm'"), std::string::npos);
  auto bad_sock = run_cli({"mem", "read", "--qmp", "/nonexistent.sock", "--pa", "0", "--len", "16"});
  EXPECT_EQ(bad_sock.exit_code, 1);
  auto usage = run_cli({"mem", "read", vmi().name, "--pa", "zzz", "--len", "16"});
  EXPECT_EQ(usage.exit_code, 2);
  auto help = run_cli({"mem", "snapshot", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--paused"), std::string::npos);
}

TEST(Bridge, VmLsShowsTheVmRunning) {
  auto r = run_cli({"vm", "ls", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool seen = false;
  for (const auto& v : Json::parse(r.out)) {
    if (v["name"] == vmi().name) {
      seen = true;
      EXPECT_EQ(v["status"], "running");
      EXPECT_EQ(v["mem_path"], vmi().mem_path);
      EXPECT_EQ(v["pid"], vmi().pid);
    }
  }
  EXPECT_TRUE(seen);
}

TEST(Bridge, SnapshotsOfTheLiveGuestAreConsistentAndSeeChanges) {
  auto ram = open_ram();
  guest::Snapshot a, b;
  auto ra = guest::take_snapshot(ram, a);
  ASSERT_TRUE(ra.has_value());
  std::this_thread::sleep_for(500ms);
  // A running guest can rewrite a page through every re-copy of it (under TCG on a loaded
  // host one rewrite spans several); the snapshot then names it torn. That is rare (seen once
  // in a CI run beside other tests, never alone): one of three snapshots must be whole, and a
  // torn one names only a few pages.
  bool whole = false;
  for (int attempt = 0; attempt < 3 && !whole; ++attempt) {
    auto rb = guest::take_snapshot(ram, b);
    ASSERT_TRUE(rb.has_value());
    whole = rb->consistent;
    EXPECT_EQ(whole, rb->torn_pages.empty());
    EXPECT_LE(rb->torn_pages.size(), 8u) << "attempt " << attempt;
  }
  EXPECT_TRUE(whole);
  auto changed = guest::changed_pages(a, b);
  ASSERT_TRUE(changed.has_value());
  EXPECT_GT(changed->size(), 0u) << "a running kernel writes some memory every 500 ms";
  EXPECT_LT(changed->size(), a.page_hashes().size());
}

TEST(Bridge, PausedSnapshotMatchesTheFileAndResumes) {
  auto ram = open_ram();
  std::string out = "/tmp/haywire_itest_snap_" + std::to_string(::getpid());
  auto r = run_cli({"mem", "snapshot", vmi().name, "-o", out, "--paused", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["consistent"], true);
  EXPECT_EQ(j["bytes"], vmi().mem_size);
  EXPECT_EQ(std::filesystem::file_size(out), vmi().mem_size);
  // The image holds the kernel banner where guest RAM does.
  auto banner = guest::find_kernel_banner(ram);
  ASSERT_TRUE(banner.has_value());
  auto offset = ram.layout().file_offset(banner->where, 14);
  ASSERT_TRUE(offset.has_value());
  std::ifstream f(out, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(*offset));
  char head[14];
  f.read(head, 14);
  EXPECT_EQ(std::string(head, 14), "Linux version ");
  std::filesystem::remove(out);
  auto client = connect();
  auto st = qmp::query_status(client);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->running);
}

TEST(Bridge, EventsArriveWhenTheVmIsPausedAndResumed) {
  auto client = connect();
  std::vector<std::string> seen;
  client.subscribe([&](const qmp::Event& e) { seen.push_back(e.name); });
  ASSERT_TRUE(qmp::stop(client).has_value());
  ASSERT_TRUE(qmp::cont(client).has_value());
  for (int i = 0; i < 20 && seen.size() < 2; ++i) ASSERT_TRUE(client.pump(100ms).has_value());
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[0], "STOP");
  EXPECT_EQ(seen[1], "RESUME");
}

}  // namespace
}  // namespace haywire::itest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new haywire::itest::SharedVm("bridge"));  // NOLINT: gtest owns it
  return RUN_ALL_TESTS();
}
