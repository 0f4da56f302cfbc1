#include "haywire/guest/ram.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;
constexpr std::uint64_t kMiB = 1 << 20;

TEST(GuestRam, ReadsWhatTheGuestWrote) {
  FakeRamFile file(4 * kMiB);
  std::memcpy(file.guest().data() + 0x123456, "haywire", 7);
  auto ram = GuestRam::open(file.path(), 4 * kMiB);
  ASSERT_TRUE(ram.has_value()) << ram.error().message();
  auto view = ram->read_pa(PhysAddr(0x123456), 7);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(std::memcmp(view->data(), "haywire", 7), 0);
  // Zero-copy: the span points into the live mapping, so later guest writes show through.
  file.guest()[0x123456] = std::byte{'H'};
  EXPECT_EQ((*view)[0], std::byte{'H'});
  char copy[7];
  ASSERT_TRUE(ram->read_pa_into(PhysAddr(0x123456), std::as_writable_bytes(std::span(copy))).has_value());
  EXPECT_EQ(std::memcmp(copy, "Haywire", 7), 0);
}

TEST(GuestRam, BoundsAreChecked) {
  FakeRamFile file(kMiB);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  EXPECT_TRUE(ram->read_pa(PhysAddr(kMiB - 1), 1).has_value());
  auto past = ram->read_pa(PhysAddr(kMiB - 1), 2);
  ASSERT_FALSE(past.has_value());
  const auto* e = past.error().as<InvalidAddress>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->addr, kMiB - 1);
  EXPECT_EQ(e->len, 2u);
  EXPECT_EQ(e->max, kMiB);
  EXPECT_FALSE(ram->read_pa(PhysAddr(~0ull), 16).has_value());
  std::vector<std::byte> big(2 * kMiB);
  EXPECT_FALSE(ram->read_pa_into(PhysAddr(0), big).has_value());
}

TEST(GuestRam, LayoutWithHoleMapsHighRamAfterLowRam) {
  // 1 MiB file: guest [0, 512K) at offset 0, guest [4G, 4G+512K) at offset 512K.
  FakeRamFile file(kMiB);
  std::memcpy(file.guest().data() + 512 * 1024, "high", 4);
  auto layout = RamLayout::make({{PhysAddr(0), 512 * 1024, 0}, {PhysAddr(4ull << 30), 512 * 1024, 512 * 1024}}, kMiB);
  ASSERT_TRUE(layout.has_value());
  auto ram = GuestRam::open(file.path(), kMiB, *layout);
  ASSERT_TRUE(ram.has_value());
  auto view = ram->read_pa(PhysAddr(4ull << 30), 4);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(std::memcmp(view->data(), "high", 4), 0);
  EXPECT_TRUE(ram->read_pa(PhysAddr(512 * 1024), 1).error().is<InvalidAddress>());  // the hole
  EXPECT_TRUE(ram->read_pa(PhysAddr(512 * 1024 - 2), 4).error().is<InvalidAddress>());  // crosses it
}

TEST(GuestRam, ErrorsSayWhatFailed) {
  auto missing = GuestRam::open("/dev/shm/qemu_ram_haywire_does_not_exist");
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.error().is<FileNotFound>());
  EXPECT_NE(missing.error().message().find("haywire vm ls"), std::string::npos);

  FakeRamFile file(kMiB);
  auto wrong = GuestRam::open(file.path(), 2 * kMiB);
  ASSERT_FALSE(wrong.has_value());
  EXPECT_TRUE(wrong.error().is<SizeMismatch>());

  auto empty_file = GuestRam::open("/dev/null");
  ASSERT_FALSE(empty_file.has_value());
  EXPECT_TRUE(empty_file.error().is<MmapFailed>());

  auto bad_layout = RamLayout::make({{PhysAddr(0), 2 * kMiB, 0}}, 2 * kMiB);
  ASSERT_TRUE(bad_layout.has_value());
  EXPECT_TRUE(GuestRam::open(file.path(), std::nullopt, *bad_layout).error().is<SizeMismatch>());
}

TEST(GuestRam, PermissionDeniedIsReported) {
  FakeRamFile file(kMiB);
  ASSERT_EQ(::chmod(file.path().c_str(), 0600), 0);
  // Root bypasses file modes, so the check runs in a child that drops to an unprivileged uid.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    auto ram = GuestRam::open(file.path());
    ::_exit(!ram.has_value() && ram.error().is<PermissionDenied>() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(GuestRamDeathTest, WritingThroughTheMappingFaults) {
  FakeRamFile file(kMiB);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  auto* p = const_cast<std::byte*>(ram->file_bytes().data());  // NOLINT: proving it faults
  EXPECT_DEATH({ *reinterpret_cast<volatile std::byte*>(p) = std::byte{1}; }, "");
}

TEST(GuestRam, ManyThreadsReadAtOnce) {
  FakeRamFile file(8 * kMiB);
  file.fill_random(7);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t off = static_cast<std::uint64_t>(t) * 4096; off + 64 <= 8 * kMiB; off += 8 * 4096 + 8) {
        auto view = ram->read_pa(PhysAddr(off), 64);
        if (!view || std::memcmp(view->data(), file.guest().data() + off, 64) != 0) ++mismatches[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(GuestRam, SeveralRamsNeverShareBytes) {
  FakeRamFile a(kMiB, "a"), b(kMiB, "b");
  std::memset(a.guest().data(), 'A', kMiB);
  std::memset(b.guest().data(), 'B', kMiB);
  auto ra = GuestRam::open(a.path());
  auto rb = GuestRam::open(b.path());
  ASSERT_TRUE(ra && rb);
  for (std::uint64_t off = 0; off < kMiB; off += 4096) {
    ASSERT_EQ((*ra->read_pa(PhysAddr(off), 1))[0], std::byte{'A'});
    ASSERT_EQ((*rb->read_pa(PhysAddr(off), 1))[0], std::byte{'B'});
  }
}

}  // namespace
}  // namespace haywire::guest
