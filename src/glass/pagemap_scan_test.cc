#include "haywire/glass/pagemap_scan.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "haywire/glass/uffd.h"

namespace haywire::glass {
namespace {

PageRange R(std::uint64_t a, std::uint64_t b) { return {VirtAddr(a), VirtAddr(b)}; }

TEST(Ranges, SubtractIntersectNormalize) {
  std::vector<PageRange> v{R(0x5000, 0x6000), R(0x1000, 0x2000), R(0x2000, 0x3000)};
  normalize_ranges(v);
  EXPECT_EQ(v, (std::vector<PageRange>{R(0x1000, 0x3000), R(0x5000, 0x6000)}));
  std::vector<PageRange> cut{R(0x2000, 0x2000 + 0x1000), R(0x5000, 0x9000)};
  EXPECT_EQ(subtract_ranges(v, cut), (std::vector<PageRange>{R(0x1000, 0x2000)}));
  EXPECT_EQ(intersect_ranges(v, cut), (std::vector<PageRange>{R(0x2000, 0x3000), R(0x5000, 0x6000)}));
  EXPECT_EQ(subtract_ranges({R(0x0, 0x10000)}, {R(0x1000, 0x2000), R(0x3000, 0x4000)}),
            (std::vector<PageRange>{R(0x0, 0x1000), R(0x2000, 0x3000), R(0x4000, 0x10000)}));
}

// normalize_ranges skips the sort for sorted input and coalesces in place; union_ranges merges
// two sorted lists. Both must give the same answer for unsorted, nested and empty ranges.
TEST(Ranges, NormalizeAndUnionSortedOrNot) {
  std::vector<PageRange> sorted{R(0x1000, 0x2000), R(0x1000, 0x5000), R(0x2000, 0x3000), R(0x4000, 0x4000),
                                R(0x5000, 0x6000), R(0x8000, 0x9000)};
  normalize_ranges(sorted);
  EXPECT_EQ(sorted, (std::vector<PageRange>{R(0x1000, 0x6000), R(0x8000, 0x9000)}));
  std::vector<PageRange> unsorted{R(0x8000, 0x9000), R(0x3000, 0x3000), R(0x2000, 0x4000), R(0x1000, 0x2000)};
  normalize_ranges(unsorted);
  EXPECT_EQ(unsorted, (std::vector<PageRange>{R(0x1000, 0x4000), R(0x8000, 0x9000)}));
  std::vector<PageRange> empty{R(0x3000, 0x3000)};
  normalize_ranges(empty);
  EXPECT_TRUE(empty.empty());

  const std::vector<PageRange> a{R(0x1000, 0x3000), R(0x8000, 0x9000)};
  const std::vector<PageRange> b{R(0x0, 0x1000), R(0x2000, 0x4000), R(0xa000, 0xb000)};
  EXPECT_EQ(union_ranges(a, b), (std::vector<PageRange>{R(0x0, 0x4000), R(0x8000, 0x9000), R(0xa000, 0xb000)}));
  EXPECT_EQ(union_ranges(a, {}), a);
  EXPECT_EQ(union_ranges({}, b), b);
  const std::vector<PageRange> b_unsorted{R(0xa000, 0xb000), R(0x2000, 0x4000), R(0x0, 0x1000)};
  EXPECT_EQ(union_ranges(a, b_unsorted), union_ranges(a, b));
}

class OwnMemory : public ::testing::Test {
 protected:
  static constexpr std::size_t kPages = 256;
  void SetUp() override {
    mem_ = static_cast<unsigned char*>(::mmap(nullptr, kPages * kPageSize, PROT_READ | PROT_WRITE,
                                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(mem_, MAP_FAILED);
    auto raw = Uffd::create_raw();
    ASSERT_TRUE(raw) << raw.error().message();
    auto uffd = Uffd::open(std::move(*raw), UffdFeatures{.wp_async = true, .wp_unpopulated = true});
    ASSERT_TRUE(uffd) << uffd.error().message();
    uffd_.emplace(std::move(*uffd));
    ASSERT_TRUE(uffd_->register_wp(base(), bytes()));
    ASSERT_TRUE(uffd_->write_protect(base(), bytes(), true));
  }
  void TearDown() override {
    uffd_.reset();
    ::munmap(mem_, kPages * kPageSize);
  }
  VirtAddr base() const { return VirtAddr(reinterpret_cast<std::uint64_t>(mem_)); }
  static std::uint64_t bytes() { return kPages * kPageSize; }
  unsigned char* mem_ = nullptr;
  std::optional<Uffd> uffd_;
};

TEST_F(OwnMemory, ReportsExactlyWrittenPagesAndRearms) {
  auto scanner = PagemapScanner::open(Pid(::getpid()), 2);  // tiny batch: forces resumes
  ASSERT_TRUE(scanner) << scanner.error().message();
  // Reading a never-touched page is not a write.
  volatile unsigned char sink = mem_[100 * kPageSize];
  (void)sink;
  std::vector<std::size_t> pages{0, 1, 2, 10, 20, 30, 40, 255};
  for (std::size_t p : pages) mem_[p * kPageSize + 7] = 1;
  std::vector<PageRange> written;
  auto count = scanner->collect_written(base(), base() + bytes(), written);
  ASSERT_TRUE(count) << count.error().message();
  EXPECT_EQ(*count, pages.size());
  std::vector<PageRange> expected{{base(), base() + 3 * kPageSize}};
  for (std::size_t p : {10, 20, 30, 40, 255}) expected.push_back({base() + p * kPageSize, base() + (p + 1) * kPageSize});
  EXPECT_EQ(written, expected);
  EXPECT_GT(scanner->ioctls(), 2u);
  // Re-armed: nothing until written again.
  written.clear();
  ASSERT_EQ(*scanner->collect_written(base(), base() + bytes(), written), 0u);
  mem_[20 * kPageSize] = 2;
  ASSERT_EQ(*scanner->collect_written(base(), base() + bytes(), written), 1u);
  EXPECT_EQ(written, (std::vector<PageRange>{{base() + 20 * kPageSize, base() + 21 * kPageSize}}));
}

TEST_F(OwnMemory, ReadWrittenReportsWithoutRearming) {
  auto scanner = PagemapScanner::open(Pid(::getpid()));
  ASSERT_TRUE(scanner) << scanner.error().message();
  std::vector<PageRange> written;
  ASSERT_TRUE(scanner->collect_written(base(), base() + bytes(), written));  // arm everything
  mem_[5 * kPageSize] = 1;
  written.clear();
  ASSERT_EQ(*scanner->read_written(base(), base() + bytes(), written), 1u);
  // Still written: a read changes no entry, so the page reads written again and costs no fault.
  written.clear();
  ASSERT_EQ(*scanner->read_written(base(), base() + bytes(), written), 1u);
  EXPECT_EQ(written, (std::vector<PageRange>{{base() + 5 * kPageSize, base() + 6 * kPageSize}}));
  ASSERT_TRUE(scanner->rearm(base(), base() + bytes()));
  written.clear();
  EXPECT_EQ(*scanner->read_written(base(), base() + bytes(), written), 0u);
}

TEST_F(OwnMemory, CheckAsyncRejectsUnregisteredMemory) {
  auto scanner = PagemapScanner::open(Pid(::getpid()));
  ASSERT_TRUE(scanner);
  ASSERT_TRUE(uffd_->unregister(base(), kPageSize));
  std::vector<PageRange> written;
  auto checked = scanner->collect_written(base(), base() + bytes(), written, true);
  ASSERT_FALSE(checked);
  EXPECT_TRUE(checked.error().is<Unsupported>()) << checked.error().message();
  EXPECT_TRUE(scanner->collect_written(base(), base() + bytes(), written, false));
}

TEST(Uffd, ApiOnlyOncePerDescriptorAndProbe) {
  auto offered = probe_uffd_features();
  ASSERT_TRUE(offered) << offered.error().message();
  EXPECT_TRUE(offered->wp_async);
  EXPECT_TRUE(offered->thread_id);
  auto raw = Uffd::create_raw();
  ASSERT_TRUE(raw);
  int fd = ::dup(raw->get());
  auto first = Uffd::open(std::move(*raw), UffdFeatures{.thread_id = true, .event_unmap = true});
  ASSERT_TRUE(first) << first.error().message();
  auto second = Uffd::open(UniqueFd(fd), UffdFeatures{.wp_async = true});
  ASSERT_FALSE(second);
  EXPECT_TRUE(second.error().is<SystemCallFailed>()) << second.error().message();
}

}  // namespace
}  // namespace haywire::glass
