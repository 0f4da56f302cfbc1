#include "haywire/glass/thread_sampler.h"

#include <set>

#include <gtest/gtest.h>

#include "glass/testing/uffd_child.h"
#include "haywire/glass/tracker.h"

namespace haywire::glass {
namespace {

using testing::UffdChild;

TEST(ThreadSampler, AttributesSampledWritesToTheWritingThread) {
  constexpr std::size_t kPages = 256;
  UffdChild child;
  ASSERT_TRUE(child.start(kPages, 2));
  auto async = Uffd::open(child.take_uffd(0), UffdFeatures{.wp_async = true, .wp_unpopulated = true});
  ASSERT_TRUE(async) << async.error().message();
  auto sync = Uffd::open(child.take_uffd(1), UffdFeatures{.thread_id = true});
  ASSERT_TRUE(sync) << sync.error().message();
  TrackerOptions options;
  VirtAddr base = child.base();
  VirtAddr end = child.page(kPages);
  options.filter = [base, end](const MemoryRegion& r) { return r.start < end && base < r.end; };
  auto tracker = Tracker::create(child.pid(), std::move(*async), options);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(tracker->enable_thread_sampling(std::move(*sync), ThreadSamplerOptions{.max_pages_per_interval = 4}));

  // Interval 1: writes choose where the sampler looks next.
  ASSERT_TRUE(child.write_pages({10, 11, 12, 13, 14, 15, 16, 17}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written_pages, 8u);

  // Interval 2: the same pages again; 4 of them are watched synchronously.
  ASSERT_TRUE(child.write_pages({10, 11, 12, 13, 14, 15, 16, 17, 100}));
  scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  // Exactness holds with pages carved out: the sampler's pages are merged back in.
  std::vector<PageRange> expected{{child.page(10), child.page(18)}, {child.page(100), child.page(101)}};
  EXPECT_EQ(scan->written, expected);
  const ThreadWrites* writes = tracker->last_thread_writes();
  ASSERT_NE(writes, nullptr);
  EXPECT_EQ(writes->sampled_pages, 4u);
  ASSERT_EQ(writes->active_threads(), 1u);
  // The child is single-threaded: its TID is its PID.
  auto it = writes->by_thread.find(static_cast<std::uint32_t>(child.pid().value()));
  ASSERT_NE(it, writes->by_thread.end());
  EXPECT_EQ(it->second.size(), 4u);
  for (VirtAddr page : it->second) {
    EXPECT_GE(page, child.page(10));
    EXPECT_LT(page, child.page(18));
  }
  ASSERT_TRUE(tracker->detach());
  EXPECT_TRUE(child.write_pages({10, 11, 12}));
}

}  // namespace
}  // namespace haywire::glass
