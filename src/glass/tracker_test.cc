#include "haywire/glass/tracker.h"

#include <fmt/format.h>

#include <numeric>
#include <string>

#include <gtest/gtest.h>

#include "glass/testing/uffd_child.h"
#include "haywire/base/fd.h"

namespace haywire::glass {
namespace {

using testing::UffdChild;

constexpr std::size_t kPages = 512;

std::vector<PageRange> pages_to_ranges(const UffdChild& child, std::vector<std::uint64_t> pages) {
  std::vector<PageRange> out;
  for (std::uint64_t p : pages) out.push_back({child.page(p), child.page(p + 1)});
  normalize_ranges(out);
  return out;
}

TrackerOptions only_child_region(const UffdChild& child, std::size_t pages = kPages) {
  TrackerOptions options;
  // Overlap, not containment: unmapping or carving a page splits the child's mapping.
  VirtAddr base = child.base();
  VirtAddr end = child.page(pages);
  options.filter = [base, end](const MemoryRegion& r) { return r.start < end && base < r.end; };
  return options;
}

Result<Tracker> track(UffdChild& child, const UffdFeatures& extra = {}, TrackerOptions options = {}) {
  UffdFeatures features = extra;
  features.wp_async = true;
  features.wp_unpopulated = true;
  auto uffd = Uffd::open(child.take_uffd(), features);
  if (!uffd) return std::unexpected(std::move(uffd.error()));
  if (!options.filter) options.filter = only_child_region(child).filter;
  return Tracker::create(child.pid(), std::move(*uffd), std::move(options));
}

// "uw" in VmFlags: a mapping registered for userfaultfd write-protect.
int wp_registered_mappings(Pid pid) {
  auto smaps = read_text_file(fmt::format("/proc/{}/smaps", pid.value()), 64 << 20);
  if (!smaps) return -1;
  int count = 0;
  std::size_t pos = 0;
  while ((pos = smaps->find("VmFlags:", pos)) != std::string::npos) {
    std::size_t eol = smaps->find('\n', pos);
    std::string line = smaps->substr(pos, eol - pos);
    if (line.find(" uw") != std::string::npos) ++count;
    pos = eol;
  }
  return count;
}

TEST(Tracker, FullModeReportsExactlyTheWrittenPages) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  EXPECT_EQ(tracker->tracked(), (std::vector<PageRange>{{child.base(), child.page(kPages)}}));

  std::vector<std::uint64_t> first{0, 1, 2, 3, 100, 101, 300, 511};
  ASSERT_TRUE(child.write_pages(first));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, first));
  EXPECT_EQ(scan->written_pages, first.size());
  EXPECT_EQ(scan->tracked_pages, kPages);
  EXPECT_FALSE(scan->sampled);

  // The next interval sees only what was written in it, rewrites of old pages included.
  std::vector<std::uint64_t> second{3, 4, 200};
  ASSERT_TRUE(child.write_pages(second));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, second));

  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_TRUE(scan->written.empty());
}

TEST(Tracker, SampledModeReportsOnlyArmedPagesAndFullModeRestores) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  // Interval 0: the start armed every page, so all are watched; each is written, so from now
  // on only what a plan re-arms is armed.
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(1)}}));
  std::vector<std::uint64_t> every(kPages);
  std::iota(every.begin(), every.end(), 0);
  ASSERT_TRUE(child.write_pages(every));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written_pages, kPages);

  ASSERT_TRUE(tracker->set_sampled({{child.page(10), child.page(20)}, {child.page(400), child.page(401)}}));
  ASSERT_TRUE(child.write_pages({5, 10, 15, 19, 20, 399, 400, 450}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_TRUE(scan->sampled);
  EXPECT_EQ(scan->armed_pages, 11u);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {10, 15, 19, 400}));

  // Move the sample. Watched now: the plan and every page the scan saw still armed (12, armed
  // by the previous plan); not the pages it saw written (15), which stay unarmed.
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(8)}}));
  ASSERT_TRUE(child.write_pages({1, 7, 8, 12, 15}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {1, 7, 12}));
  EXPECT_EQ(scan->armed_pages, 8u + 7u) << "the plan and the 7 pages of the previous one not written";

  ASSERT_TRUE(tracker->set_full());
  ASSERT_TRUE(child.write_pages({1, 15, 450}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_FALSE(scan->sampled);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {1, 15, 450}));
}

// Sampled scans only read (nothing re-armed: the next plan is elsewhere), and the next plan
// is armed where the scan saw pages not armed: a write landing between the scan and the
// arming in an armed range belongs to the new interval and is reported; a page written before
// the scan (outside the plan) is armed afresh when a plan takes it in, so its old write is not.
TEST(Tracker, SampledScansOnlyReadAndArmingFollowsWhatTheyRead) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);  // full mode arms every page
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(tracker->set_sampled({{child.page(100), child.page(110)}}));
  ASSERT_TRUE(child.write_pages({101, 300}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, {101, 300})) << "300 was armed at the start: watched too";
  // Not re-armed by the scan: a second read without arming sees both again.
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {101, 300}));

  ASSERT_TRUE(child.write_pages({105}));  // after the scan, before the next plan is armed
  // [100, 103) holds the unarmed 101: armed again. [105, 110) was all armed at the scan: left
  // as it is, so 105's write counts. [295, 305) holds the unarmed 300: armed again.
  ASSERT_TRUE(tracker->set_sampled(
      {{child.page(100), child.page(103)}, {child.page(105), child.page(110)}, {child.page(295), child.page(305)}}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {105}))
      << "101 re-armed by the plan; 105 written in the new interval; 300's old write not reported";

  ASSERT_TRUE(tracker->set_sampled({{child.page(295), child.page(305)}}));
  ASSERT_TRUE(child.write_pages({301, 105}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {301}));
}

// Sampled mode watches every page known to be armed, not only the plan: a page armed by an
// earlier plan (or the start) and not written since is still armed, and its next write is
// reported; a page seen written stays unwatched until a plan re-arms it.
TEST(Tracker, SampledModeWatchesEveryPageStillArmed) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(10)}}));
  // Interval 1: the start armed every page, so all are watched: 50 is seen as well as 5.
  ASSERT_TRUE(child.write_pages({5, 50}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, {5, 50}));
  EXPECT_EQ(scan->watched, std::vector<PageRange>({{child.page(0), child.page(kPages)}}));
  // Interval 2: the plan moves to [20, 30); the scan saw 5 and 50 not armed, everything else
  // armed. 60 (armed since the start) and 25 are seen, 50 (unarmed) and 5 are not.
  ASSERT_TRUE(tracker->set_sampled({{child.page(20), child.page(30)}}));
  ASSERT_TRUE(child.write_pages({5, 25, 50, 60}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {25, 60}));
  EXPECT_EQ(scan->armed_pages, kPages - 2);
  // Interval 3: a plan over 50 re-arms it; 25 and 60 were seen written, so are not watched.
  ASSERT_TRUE(tracker->set_sampled({{child.page(48), child.page(52)}}));
  ASSERT_TRUE(child.write_pages({25, 50, 60, 61}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {50, 61}));
}

// A sampled scan reads the entries of what it watched, joined across gaps of up to one
// page-table page (512 pages), not of every tracked page: pages seen written are left out
// until a plan re-arms them, so the walk shrinks to the plan and what is still armed. A plan
// range outside what the scan read is re-protected (its state is not known).
TEST(Tracker, SampledScansWalkOnlyWhatTheyWatch) {
  constexpr std::size_t kBig = 4096;
  UffdChild child;
  ASSERT_TRUE(child.start(kBig));
  auto tracker = track(child, {}, only_child_region(child, kBig));
  ASSERT_TRUE(tracker) << tracker.error().message();
  // Interval 1: everything was armed at the start, so everything is watched and read.
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(16)}}));
  std::vector<std::uint64_t> sweep;
  for (std::uint64_t p = 1000; p < 3000; ++p) sweep.push_back(p);  // a gap wider than 512 pages
  for (std::uint64_t p = 3100; p < 3200; ++p) sweep.push_back(p);  // a narrower one
  ASSERT_TRUE(child.write_pages(sweep));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written_pages, 2100U);
  EXPECT_EQ(scan->walked_pages, kBig);

  // Interval 2: watched are the pages not seen written. The wide gap is not read; the narrow
  // one is (one call instead of two), but its pages are not watched: 3150 is not reported.
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(16)}}));
  ASSERT_TRUE(child.write_pages({5, 2000, 3150, 4000}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {5, 4000}));
  EXPECT_EQ(scan->watched, std::vector<PageRange>({{child.page(0), child.page(1000)},
                                                   {child.page(3000), child.page(3100)},
                                                   {child.page(3200), child.page(kBig)}}));
  EXPECT_EQ(scan->walked_pages, kBig - 2000);
  auto armed = tracker->known_armed();
  ASSERT_TRUE(armed);
  EXPECT_EQ(*armed, std::vector<PageRange>({{child.page(0), child.page(5)},
                                            {child.page(6), child.page(1000)},
                                            {child.page(3000), child.page(3100)},
                                            {child.page(3200), child.page(4000)},
                                            {child.page(4001), child.page(kBig)}}));

  // Interval 3: a plan range in the unread gap is re-protected; one within what was seen
  // armed is not.
  ASSERT_TRUE(tracker->set_sampled({{child.page(1990), child.page(2010)}, {child.page(500), child.page(510)}}));
  EXPECT_EQ(tracker->last_arming().ranges, 2U);
  EXPECT_EQ(tracker->last_arming().rearmed, 1U);
  ASSERT_TRUE(child.write_pages({2000, 505}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {505, 2000}));
}

// Memory that appears while sampling: the scan that finds it reports what was written there
// before (so the interval it appeared in is not missed), without arming it; the plans cover it
// from then on like any other page.
TEST(Tracker, SampledModeReportsWritesToNewMemoryBeforeItWasFound) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  TrackerOptions options = only_child_region(child);
  options.maps_every = 1;  // an unmap and a remap of the same size leave statm's counters alone
  auto tracker = track(child, {}, std::move(options));
  ASSERT_TRUE(tracker) << tracker.error().message();
  const std::vector<PageRange> plan{{child.page(0), child.page(10)}};
  std::vector<std::uint64_t> fresh;
  for (std::uint64_t p = 300; p < 310; ++p) fresh.push_back(p);
  ASSERT_TRUE(tracker->set_sampled(plan));
  ASSERT_TRUE(child.send_command(UffdChild::kUnmap, fresh) && child.wait_ack());
  ASSERT_TRUE(tracker->scan());
  ASSERT_TRUE(tracker->set_sampled(plan));
  ASSERT_TRUE(child.send_command(UffdChild::kRemap, fresh) && child.wait_ack());
  ASSERT_TRUE(child.write_pages({301, 302, 5}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->regions_added, 1U);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {5, 301, 302}));
  // Not armed by finding it: outside the plan, its writes are not seen.
  ASSERT_TRUE(tracker->set_sampled(plan));
  ASSERT_TRUE(child.write_pages({301, 305, 6}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {6}));
  // A plan over it arms it.
  ASSERT_TRUE(tracker->set_sampled({{child.page(300), child.page(310)}}));
  ASSERT_TRUE(child.write_pages({301, 305, 6}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {301, 305}));
}

// disarm() un-protects everything, so the next plan is all that is armed and watched: pages
// outside it cost the target nothing and are not reported.
TEST(Tracker, DisarmLeavesOnlyThePlanArmed) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(tracker->disarm());
  ASSERT_TRUE(tracker->set_sampled({{child.page(0), child.page(10)}}));
  EXPECT_EQ(tracker->last_arming().rearmed, 1U) << "nothing known armed: the plan is armed whole";
  ASSERT_TRUE(child.write_pages({5, 50, 300}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, {5}));
  EXPECT_EQ(scan->armed_pages, 10U);
  // The plan moves on; 50 stays unarmed (written, and no plan covered it since).
  ASSERT_TRUE(tracker->set_sampled({{child.page(48), child.page(52)}}));
  ASSERT_TRUE(child.write_pages({5, 50, 51}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {50, 51}));
}

// scan(rearm = false) in full mode (a calibration interval closing before a sampled one) reads
// without re-arming: the same pages read written again until a scan re-arms them.
TEST(Tracker, FullScanWithoutRearmOnlyReads) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(child.write_pages({1, 50}));
  auto scan = tracker->scan(false);
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_FALSE(scan->sampled);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {1, 50}));
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {1, 50})) << "not re-armed by the reading scan";
  scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_TRUE(scan->written.empty()) << "re-armed by the full scan";
}

// A full interval expected to hand over to sampled mode (scan(false)) that turns out to be
// followed by another full one: set_full() arms what the reading scan left, so the next scan
// reports only new writes.
TEST(Tracker, SetFullArmsWhatAReadingScanLeft) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(child.write_pages({7, 300}));
  ASSERT_TRUE(tracker->scan(false));
  ASSERT_TRUE(tracker->set_full());
  ASSERT_TRUE(child.write_pages({8}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, {8}));
}

TEST(Tracker, UnmapEventIsDeliveredAndApplied) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child, UffdFeatures{.event_remap = true, .event_remove = true, .event_unmap = true});
  ASSERT_TRUE(tracker) << tracker.error().message();
  std::vector<TrackerEvent> events;
  tracker->on_event([&](TrackerEvent& e) { events.push_back(std::move(e)); });
  // The child blocks in munmap until we read the event.
  ASSERT_TRUE(child.send_command(UffdChild::kUnmap, {100}));
  for (int i = 0; i < 100 && events.empty(); ++i) ASSERT_TRUE(tracker->wait_events(50));
  ASSERT_TRUE(child.wait_ack());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, UffdMessage::Type::kUnmap);
  EXPECT_EQ(events[0].address, child.page(100));
  EXPECT_EQ(events[0].end, child.page(101));
  EXPECT_EQ(tracker->tracked(),
            (std::vector<PageRange>{{child.base(), child.page(100)}, {child.page(101), child.page(kPages)}}));
  ASSERT_TRUE(child.write_pages({99, 101}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan->written, pages_to_ranges(child, {99, 101}));
}

// The maps are re-read when statm's counters move (mprotect moves data_vm), after a layout
// message, and every maps_every scans; otherwise the scan keeps the layout it has.
TEST(Tracker, RereadsTheMapsOnlyWhenTheLayoutMayHaveChanged) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  TrackerOptions options;
  const VirtAddr base = child.base();
  const VirtAddr end = child.page(kPages);
  options.filter = [base, end](const MemoryRegion& r) { return r.writable() && r.start < end && base < r.end; };
  options.maps_every = 3;
  auto tracker = track(child, UffdFeatures{.event_remap = true, .event_remove = true, .event_unmap = true},
                       std::move(options));
  ASSERT_TRUE(tracker) << tracker.error().message();
  auto maps_read = [&] {
    auto scan = tracker->scan();
    EXPECT_TRUE(scan) << scan.error().message();
    return scan && scan->maps_read;
  };
  EXPECT_TRUE(maps_read()) << "the first scan has no counters to compare with";
  EXPECT_FALSE(maps_read());
  EXPECT_FALSE(maps_read());
  EXPECT_TRUE(maps_read()) << "the third scan since the last read reads whatever the counters say";
  EXPECT_FALSE(maps_read());

  ASSERT_TRUE(child.send_command(UffdChild::kReadOnly, {300}) && child.wait_ack());
  EXPECT_TRUE(maps_read()) << "data_vm moved";
  EXPECT_EQ(tracker->tracked(),
            (std::vector<PageRange>{{child.base(), child.page(300)}, {child.page(301), child.page(kPages)}}));
  EXPECT_FALSE(maps_read());
  ASSERT_TRUE(child.send_command(UffdChild::kWritable, {300}) && child.wait_ack());
  EXPECT_TRUE(maps_read());
  EXPECT_EQ(tracker->tracked(), (std::vector<PageRange>{{child.base(), child.page(kPages)}}));
  ASSERT_TRUE(child.write_pages({300}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->written, pages_to_ranges(child, {300})) << "the page made writable again is tracked";

  // The unmap message is applied at once; it also marks the layout stale.
  ASSERT_TRUE(child.send_command(UffdChild::kUnmap, {100}));
  bool seen = false;
  tracker->on_event([&](TrackerEvent&) { seen = true; });
  for (int i = 0; i < 100 && !seen; ++i) ASSERT_TRUE(tracker->wait_events(50));
  ASSERT_TRUE(child.wait_ack());
  EXPECT_TRUE(maps_read());
  EXPECT_FALSE(maps_read());
}

TEST(Tracker, DetachLeavesNoRegistration) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  auto tracker = track(child);
  ASSERT_TRUE(tracker) << tracker.error().message();
  ASSERT_TRUE(child.write_pages({1, 2}));
  EXPECT_GE(wp_registered_mappings(child.pid()), 1);
  ASSERT_TRUE(tracker->detach()) ;
  EXPECT_EQ(wp_registered_mappings(child.pid()), 0);
  EXPECT_TRUE(tracker->detach());  // twice is fine
  EXPECT_FALSE(tracker->scan());
  // The target keeps running normally.
  EXPECT_TRUE(child.write_pages({1, 2, 3}));
}

TEST(Tracker, DefaultFilterTracksWholeProcessAndDetaches) {
  UffdChild child;
  ASSERT_TRUE(child.start(kPages));
  TrackerOptions options;
  options.filter = [](const MemoryRegion& r) { return is_trackable(r) && r.size() <= (std::uint64_t{1} << 30); };
  auto tracker = track(child, {}, options);
  ASSERT_TRUE(tracker) << tracker.error().message();
  EXPECT_GT(tracker->tracked().size(), 1u);
  ASSERT_TRUE(child.write_pages({7}));
  auto scan = tracker->scan();
  ASSERT_TRUE(scan) << scan.error().message();
  // The child's own stack, heap and libc data are written too; our page must be among them.
  EXPECT_FALSE(intersect_ranges(scan->written, pages_to_ranges(child, {7})).empty());
  EXPECT_TRUE(intersect_ranges(scan->written, pages_to_ranges(child, {8})).empty());
  ASSERT_TRUE(tracker->detach());
  EXPECT_EQ(wp_registered_mappings(child.pid()), 0);
}

TEST(Tracker, RejectsSyncContext) {
  UffdChild child;
  ASSERT_TRUE(child.start(8));
  auto uffd = Uffd::open(child.take_uffd(), UffdFeatures{.thread_id = true});
  ASSERT_TRUE(uffd);
  auto tracker = Tracker::create(child.pid(), std::move(*uffd), only_child_region(child));
  ASSERT_FALSE(tracker);
  EXPECT_TRUE(tracker.error().is<InvalidArgument>());
}

}  // namespace
}  // namespace haywire::glass
