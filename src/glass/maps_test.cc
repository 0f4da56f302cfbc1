#include "haywire/glass/maps.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <string>

#include <gtest/gtest.h>

namespace haywire::glass {
namespace {

constexpr std::string_view kClassic =
    "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon\n"
    "00651000-00652000 rw-p 00051000 08:02 173521      /usr/bin/dbus-daemon\n"
    "00e03000-00e24000 rw-p 00000000 00:00 0           [heap]\n"
    "7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 \n"
    "7f1c2b000000-7f1c2b100000 rw-s 00000000 00:01 1234 /memfd:shared (deleted)\n"
    "7f1c2c000000-7f1c2c001000 rw-p 00000000 00:00 0    [anon:arena name]\n"
    "7ffc4d1e0000-7ffc4d201000 rw-p 00000000 00:00 0      [stack]\n"
    "7ffc4d3f0000-7ffc4d3f4000 r--p 00000000 00:00 0      [vvar]\n"
    "7ffc4d3f4000-7ffc4d3f6000 r-xp 00000000 00:00 0      [vdso]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n";

TEST(Maps, ParsesAndClassifies) {
  auto regions = parse_maps(kClassic);
  ASSERT_TRUE(regions) << regions.error().message();
  ASSERT_EQ(regions->size(), 10u);
  const auto& r = *regions;
  EXPECT_EQ(r[0].start, VirtAddr(0x400000));
  EXPECT_EQ(r[0].end, VirtAddr(0x452000));
  EXPECT_EQ(r[0].permissions, "r-xp");
  EXPECT_EQ(r[0].device, "08:02");
  EXPECT_EQ(r[0].inode, 173521u);
  EXPECT_EQ(r[0].path, "/usr/bin/dbus-daemon");
  EXPECT_EQ(r[1].offset, 0x51000u);
  EXPECT_EQ(r[0].kind, RegionKind::kFileBacked);
  EXPECT_EQ(r[2].kind, RegionKind::kHeap);
  EXPECT_EQ(r[3].kind, RegionKind::kAnonymous);
  EXPECT_EQ(r[3].path, "");
  EXPECT_EQ(r[4].kind, RegionKind::kShared);
  EXPECT_EQ(r[5].kind, RegionKind::kAnonymous);
  EXPECT_EQ(r[5].path, "[anon:arena name]");
  EXPECT_EQ(r[6].kind, RegionKind::kStack);
  EXPECT_EQ(r[7].kind, RegionKind::kVvar);
  EXPECT_EQ(r[8].kind, RegionKind::kVdso);
  EXPECT_EQ(r[9].kind, RegionKind::kVsyscall);
}

TEST(Maps, TrackableIsWritablePrivateNonSpecial) {
  auto regions = parse_maps(kClassic);
  ASSERT_TRUE(regions);
  auto trackable = trackable_regions(*regions);
  std::vector<std::string_view> kinds;
  for (const auto& r : trackable) kinds.push_back(to_string(r.kind));
  EXPECT_EQ(kinds, (std::vector<std::string_view>{"file", "heap", "anonymous", "anonymous", "stack"}));
}

TEST(Maps, RejectsHostileInput) {
  const char* bad[] = {
      "zz000-1000 rw-p 00000000 00:00 0\n",                         // bad hex
      "2000-1000 rw-p 00000000 00:00 0\n",                          // start > end
      "1000-1000 rw-p 00000000 00:00 0\n",                          // empty
      "1000-2001 rw-p 00000000 00:00 0\n",                          // unaligned
      "1000 rw-p 00000000 00:00 0\n",                               // no dash
      "1000-2000 rw-p\n",                                           // missing fields
      "1000-2000 rwxq 00000000 00:00 0\n",                          // bad permissions
      "1000-2000 rw-p 00000000 0000 0\n",                           // bad device
      "1000-2000 rw-p 00000000 00:00 x\n",                          // bad inode
      "1000-2000 rw-p 00000000 00:00 0\n1000-3000 rw-p 0 00:00 0\n",  // overlap
      "10000000000000000-10000000000001000 rw-p 0 00:00 0\n",       // > 64 bits
  };
  for (const char* text : bad) EXPECT_FALSE(parse_maps(text)) << text;
  std::string with_nul = "1000-2000 rw-p 00000000 00:00 0 /a";
  with_nul += '\0';
  with_nul += "b\n";
  EXPECT_FALSE(parse_maps(with_nul));
  std::string long_line = "1000-2000 rw-p 00000000 00:00 0 /" + std::string(kMaxMapsLine, 'a') + "\n";
  auto result = parse_maps(long_line);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message().find("line 1"), std::string::npos) << result.error().message();
}

TEST(Maps, OutOfOrderLinesAreLeftOutWhenAskedFor) {
  const char* text =
      "1000-2000 rw-p 00000000 00:00 0\n"
      "1000-3000 rw-p 00000000 00:00 0\n"  // overlaps: the layout changed between two pages
      "5000-6000 rw-p 00000000 00:00 0\n"
      "4000-5000 rw-p 00000000 00:00 0\n"  // precedes
      "7000-8000 rw-p 00000000 00:00 0\n";
  EXPECT_FALSE(parse_maps(text));
  std::size_t out_of_order = 0;
  auto regions = parse_maps(text, &out_of_order);
  ASSERT_TRUE(regions) << regions.error().message();
  EXPECT_EQ(out_of_order, 2u);
  ASSERT_EQ(regions->size(), 3u);
  EXPECT_EQ((*regions)[1].start, VirtAddr(0x5000));
  EXPECT_EQ((*regions)[2].start, VirtAddr(0x7000));
  // Malformed lines still fail.
  EXPECT_FALSE(parse_maps("1000-2000 rw-p 00000000 00:00 0\nzz-1 rw-p 0 00:00 0\n", &out_of_order));
}

TEST(Maps, EmptyAndBlankLinesAreFine) {
  auto empty = parse_maps("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  auto regions = parse_maps("\n1000-2000 rw-p 00000000 00:00 0\n\n");
  ASSERT_TRUE(regions);
  EXPECT_EQ(regions->size(), 1u);
}

TEST(Maps, ReadsOwnMaps) {
  auto regions = read_maps(Pid(::getpid()));
  ASSERT_TRUE(regions) << regions.error().message();
  bool stack = false;
  for (const auto& r : *regions) stack = stack || r.kind == RegionKind::kStack;
  EXPECT_TRUE(stack);
  EXPECT_FALSE(trackable_regions(*regions).empty());
}

// The kernel writes /proc/PID/maps a page at a time and lets the process change its layout in
// between, so a long file read while regions split and merge can show a region that overlaps
// the one before. read_maps must still return a sorted, non-overlapping layout, not fail (a
// multithreaded target growing its malloc arenas made `haywire glass` exit on this).
TEST(Maps, ReadsAConsistentLayoutWhileItChanges) {
  constexpr std::size_t kPages = 2048;
  const long page = ::sysconf(_SC_PAGESIZE);
  auto* mem = static_cast<char*>(::mmap(nullptr, kPages * page, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(mem, MAP_FAILED);
  // Every other page read-only: ~1000 regions, far more than one page of maps text.
  for (std::size_t i = 0; i < kPages; i += 2) ::mprotect(mem + i * page, page, PROT_READ);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    // Merge and split regions all the time: flip the protection of the odd pages.
    for (std::size_t round = 0; !stop.load(); ++round) {
      for (std::size_t i = 1; i < kPages && !stop.load(); i += 2)
        ::mprotect(mem + i * page, page, round % 2 == 0 ? PROT_READ : PROT_READ | PROT_WRITE);
    }
  });
  int failures = 0;
  std::string first_error;
  for (int i = 0; i < 200; ++i) {
    auto regions = read_maps(Pid(::getpid()));
    if (!regions) {
      if (failures++ == 0) first_error = regions.error().message();
      continue;
    }
    for (std::size_t k = 1; k < regions->size(); ++k) {
      ASSERT_LE((*regions)[k - 1].end, (*regions)[k].start) << "read " << i << ", region " << k;
    }
  }
  stop = true;
  churn.join();
  ::munmap(mem, kPages * page);
  EXPECT_EQ(failures, 0) << first_error;
}

TEST(Maps, ParsesStatmCounters) {
  auto sizes = parse_statm("2676 1061 836 6 0 140 0\n");
  ASSERT_TRUE(sizes) << sizes.error().message();
  EXPECT_EQ(sizes->total_pages, 2676u);
  EXPECT_EQ(sizes->data_pages, 140u);
  auto own = read_vm_sizes(Pid(static_cast<std::int32_t>(::getpid())));
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_GT(own->total_pages, 0u);
  EXPECT_GT(own->data_pages, 0u);
  EXPECT_LE(own->data_pages, own->total_pages);
}

TEST(Maps, RejectsMalformedStatm) {
  for (std::string_view text : {"", "\n", "1 2 3 4 5 6", "1 2 3 4 5 6 7 8", "1 2 3 4 5 x 7", "1  2 3 4 5 6 7",
                                "1 2 3 4 5 6 -7", "1 2 3 4 5 6 99999999999999999999999", "1\t2 3 4 5 6 7"}) {
    auto sizes = parse_statm(text);
    EXPECT_FALSE(sizes) << "accepted: '" << text << "'";
    if (!sizes) {
      EXPECT_TRUE(sizes.error().is<ParseError>()) << sizes.error().message();
    }
  }
}

TEST(Maps, ParsesTheThreadCountOfStat) {
  // The command name is the process's choice: spaces and parentheses are allowed in it.
  auto threads = parse_stat_threads(
      "1234 (a) b ) c) S 1 1234 1234 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 7 0 5521 2244608 334 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n");
  ASSERT_TRUE(threads) << threads.error().message();
  EXPECT_EQ(*threads, 7u);
  auto own = read_thread_count(Pid(static_cast<std::int32_t>(::getpid())));
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_GE(*own, 1u);
  // The thread stays until the count is read: one that ends first is not counted (this test
  // failed that way once, under load).
  std::atomic<bool> counted{false};
  std::thread extra([&counted] {
    while (!counted.load()) std::this_thread::yield();
  });
  auto more = read_thread_count(Pid(static_cast<std::int32_t>(::getpid())));
  counted = true;
  extra.join();
  ASSERT_TRUE(more);
  EXPECT_EQ(*more, *own + 1);
}

TEST(Maps, RejectsMalformedStat) {
  for (std::string_view text : {"", "1234 (cat S 1 2 3", "1234 (cat) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 zero 0",
                                "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 0 0", "1 (x)", "1 (x)  S", ")",
                                "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 99999999999 0"}) {
    auto threads = parse_stat_threads(text);
    EXPECT_FALSE(threads) << "accepted: '" << text << "'";
    if (!threads) {
      EXPECT_TRUE(threads.error().is<ParseError>()) << threads.error().message();
    }
  }
}

TEST(Maps, MissingProcessIsNotFound) {
  auto regions = read_maps(Pid(0x7ffffff0));
  ASSERT_FALSE(regions);
  EXPECT_TRUE(regions.error().is<NotFound>()) << regions.error().message();
}

}  // namespace
}  // namespace haywire::glass
