#include "haywire/glass/thread_sampler.h"

#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "glass/testing/uffd_child.h"
#include "haywire/glass/tracker.h"

namespace haywire::glass {
namespace {

using testing::UffdChild;

// A tracker over the child's region (started with two contexts) with thread sampling on.
Result<Tracker> sampled_tracker(UffdChild& child, std::size_t pages, const ThreadSamplerOptions& sampling) {
  auto async = Uffd::open(child.take_uffd(0), UffdFeatures{.wp_async = true, .wp_unpopulated = true});
  if (!async) return std::unexpected(async.error());
  auto sync = Uffd::open(child.take_uffd(1), UffdFeatures{.thread_id = true});
  if (!sync) return std::unexpected(sync.error());
  TrackerOptions options;
  VirtAddr base = child.base();
  VirtAddr end = child.page(pages);
  options.filter = [base, end](const MemoryRegion& r) { return r.start < end && base < r.end; };
  auto tracker = Tracker::create(child.pid(), std::move(*async), options);
  if (!tracker) return std::unexpected(tracker.error());
  if (auto enabled = tracker->enable_thread_sampling(std::move(*sync), sampling); !enabled)
    return std::unexpected(enabled.error());
  return tracker;
}

// A single-threaded target: its thread wrote everything; no page is carved to tell.
TEST(ThreadSampler, NamesTheSoleThreadOfASingleThreadedTargetWithoutCarving) {
  constexpr std::size_t kPages = 256;
  UffdChild child;
  ASSERT_TRUE(child.start(kPages, 2));
  auto tracker = sampled_tracker(child, kPages, ThreadSamplerOptions{.max_pages = 4});
  ASSERT_TRUE(tracker) << tracker.error().message();
  for (int interval = 0; interval < 3; ++interval) {
    ASSERT_TRUE(child.write_pages({10, 11, 12, 13, 200}));
    auto scan = tracker->scan();
    ASSERT_TRUE(scan) << scan.error().message();
    EXPECT_EQ(scan->written, (std::vector<PageRange>{{child.page(10), child.page(14)}, {child.page(200), child.page(201)}}));
    const ThreadWrites* writes = tracker->last_thread_writes();
    ASSERT_NE(writes, nullptr);
    EXPECT_EQ(writes->sole_writer, std::optional<std::uint32_t>(static_cast<std::uint32_t>(child.pid().value())));
    EXPECT_EQ(writes->sampled_pages, 0u);
    EXPECT_EQ(writes->faults, 0u);
  }
}

TEST(ThreadSampler, AttributesSampledWritesToTheWritingThread) {
  constexpr std::size_t kPages = 256;
  UffdChild child;
  ASSERT_TRUE(child.start(kPages, 2, 1));
  auto tracker = sampled_tracker(child, kPages, ThreadSamplerOptions{.max_pages = 4});
  ASSERT_TRUE(tracker) << tracker.error().message();

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

TEST(ThreadSampler, KeepsWrittenPagesCarvedAndReturnsIdleOnesArmed) {
  constexpr std::size_t kPages = 64;
  UffdChild child;
  ASSERT_TRUE(child.start(kPages, 2, 1));
  auto tracker = sampled_tracker(child, kPages,
                                 ThreadSamplerOptions{.max_pages = 4, .max_moves_per_interval = 2, .idle_intervals = 2});
  ASSERT_TRUE(tracker) << tracker.error().message();
  const std::vector<std::size_t> hot{10, 11, 12, 13, 14, 15, 16, 17};
  const std::vector<PageRange> hot_range{{child.page(10), child.page(18)}};
  const auto tid = static_cast<std::uint32_t>(child.pid().value());
  auto interval = [&](const std::vector<std::size_t>& pages) -> std::optional<ScanResult> {
    if (!child.write_pages(pages)) return std::nullopt;
    auto scan = tracker->scan();
    if (!scan) return std::nullopt;
    return *scan;
  };
  auto attributed = [&]() -> std::size_t {
    auto it = tracker->last_thread_writes()->by_thread.find(tid);
    return it == tracker->last_thread_writes()->by_thread.end() ? 0 : it->second.size();
  };

  // Intervals 1-3: two pages carved per interval (the move bound) until four are; the pages
  // carved earlier stay and are written, so attributed, every interval.
  auto scan = interval(hot);
  ASSERT_TRUE(scan);
  scan = interval(hot);
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, hot_range);
  EXPECT_EQ(tracker->last_thread_writes()->sampled_pages, 2u);
  EXPECT_EQ(attributed(), 2u);
  scan = interval(hot);
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, hot_range);  // exact with four pages carved out
  EXPECT_EQ(tracker->last_thread_writes()->sampled_pages, 4u);
  EXPECT_EQ(attributed(), 4u);
  scan = interval(hot);
  ASSERT_TRUE(scan);
  EXPECT_EQ(attributed(), 4u);  // kept, protected again, written again

  // Intervals 5-8: nothing written. After two idle intervals the pages go back, two at a time.
  for (int i = 0; i < 4; ++i) {
    scan = interval({});
    ASSERT_TRUE(scan);
    EXPECT_TRUE(scan->written.empty());
  }
  // Back in the async context and armed: only what is written now is reported.
  scan = interval({10, 11});
  ASSERT_TRUE(scan);
  EXPECT_EQ(tracker->last_thread_writes()->sampled_pages, 0u);
  EXPECT_EQ(tracker->last_thread_writes()->faults, 0u);
  EXPECT_EQ(scan->written, (std::vector<PageRange>{{child.page(10), child.page(12)}}));
  ASSERT_TRUE(tracker->detach());
  EXPECT_TRUE(child.write_pages({10, 11, 12}));
}

}  // namespace
}  // namespace haywire::glass
