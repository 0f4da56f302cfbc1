#include "haywire/guest/snapshot.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;

TEST(Snapshot, CopiesEveryByteAndHashesEveryPage) {
  FakeRamFile file(1 << 20);
  file.fill_random(1);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  Snapshot snap;
  auto report = take_snapshot(*ram, snap);
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->consistent);
  EXPECT_EQ(report->recopied_pages, 0u);
  ASSERT_EQ(snap.size(), file.size());
  EXPECT_EQ(std::memcmp(snap.bytes().data(), file.guest().data(), file.size()), 0);
  ASSERT_EQ(snap.page_hashes().size(), 256u);
  EXPECT_EQ(snap.page_hashes()[5], page_hash(file.guest().subspan(5 * 4096, 4096)));
}

TEST(Snapshot, OddSizedSourceHasAShortLastPage) {
  std::vector<std::byte> source(3 * 4096 + 100, std::byte{7});
  Snapshot snap;
  ASSERT_TRUE(take_snapshot(source, snap).has_value());
  ASSERT_EQ(snap.page_hashes().size(), 4u);
  EXPECT_EQ(snap.page_hashes()[3], page_hash(std::span(source).subspan(3 * 4096)));
  EXPECT_FALSE(take_snapshot(std::span<const std::byte>{}, snap).has_value());
}

TEST(Snapshot, ChangedPagesBetweenTwoSnapshots) {
  FakeRamFile file(1 << 20);
  file.fill_random(2);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  Snapshot a, b;
  ASSERT_TRUE(take_snapshot(*ram, a).has_value());
  file.guest()[3 * 4096 + 17] ^= std::byte{0xff};
  file.guest()[200 * 4096] ^= std::byte{0x01};
  ASSERT_TRUE(take_snapshot(*ram, b).has_value());
  auto changed = changed_pages(a, b);
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(*changed, (std::vector<std::uint64_t>{3, 200}));

  Snapshot plain;
  ASSERT_TRUE(take_snapshot(*ram, plain, {.detect_tears = false}).has_value());
  EXPECT_FALSE(changed_pages(a, plain).has_value());
}

// A "guest" thread rewrites every page front to back with 8-byte words holding a counter that
// grows by one per pass. At any single instant a page therefore reads [n+1 ... n+1, n ... n]:
// newer words first, at most one step. A copy that is not a picture of one instant (a torn
// read) can show older words before newer ones, or values more than one pass apart. Tear
// detection must never report such a page as consistent.
class TornWrites : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kPages = 16;
  static constexpr std::uint64_t kWords = 4096 / 8;
  FakeRamFile file{kPages * 4096};
  std::atomic<bool> stop{false};
  std::thread writer;

  void SetUp() override {
    std::memset(file.guest().data(), 0, file.size());
    writer = std::thread([this] {
      auto* words = reinterpret_cast<volatile std::uint64_t*>(file.guest().data());  // NOLINT
      for (std::uint64_t pass = 1; !stop.load(std::memory_order_relaxed); ++pass)
        for (std::uint64_t w = 0; w < kPages * kWords; ++w) words[w] = pass;
    });
  }
  void TearDown() override {
    stop = true;
    writer.join();
  }
  // True if the page could have been read at one instant.
  static bool one_instant(std::span<const std::byte> page) {
    std::uint64_t first = 0;
    std::memcpy(&first, page.data(), 8);
    bool stepped = false;
    for (std::uint64_t w = 1; w < kWords; ++w) {
      std::uint64_t v = 0;
      std::memcpy(&v, page.data() + w * 8, 8);
      if (v == first && !stepped) continue;
      if (!stepped && v + 1 == first) {
        stepped = true;
        first = v;
        continue;
      }
      if (stepped && v == first) continue;
      return false;
    }
    return true;
  }
};

TEST_F(TornWrites, NoMixedPageIsEverReportedConsistent) {
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  Snapshot snap;
  std::uint64_t recopied = 0;
  // At least 400 rounds, and on until tearing was seen (bounded: a loaded machine may rarely
  // run the writer and the reader at the same time).
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int round = 0; round < 400 || (recopied == 0 && std::chrono::steady_clock::now() < until); ++round) {
    auto report = take_snapshot(*ram, snap, {.max_retries = 2});
    ASSERT_TRUE(report.has_value());
    recopied += report->recopied_pages;
    std::vector<bool> torn(kPages, false);
    for (auto p : report->torn_pages) torn[p] = true;
    EXPECT_EQ(report->consistent, report->torn_pages.empty());
    for (std::uint64_t p = 0; p < kPages; ++p) {
      if (torn[p]) continue;
      ASSERT_TRUE(one_instant(snap.bytes().subspan(p * 4096, 4096))) << "round " << round << " page " << p;
    }
  }
  // The writer is fast enough that some copies must have been retried: the test saw tearing.
  EXPECT_GT(recopied, 0u);
}

TEST_F(TornWrites, APlainCopyDoesTear) {
  // Shows that the workload really produces torn copies, so the test above is meaningful.
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  Snapshot snap;
  bool saw_mixed = false;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!saw_mixed && std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(take_snapshot(*ram, snap, {.detect_tears = false}).has_value());
    for (std::uint64_t p = 0; p < kPages && !saw_mixed; ++p)
      saw_mixed = !one_instant(snap.bytes().subspan(p * 4096, 4096));
  }
  EXPECT_TRUE(saw_mixed);
}

}  // namespace
}  // namespace haywire::guest
