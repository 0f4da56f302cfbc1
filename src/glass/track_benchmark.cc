// Cost of write tracking, measured on this process's own memory:
//   BM_FirstWrite/plain   one write per page of populated memory, untracked (the baseline)
//   BM_FirstWrite/tracked the same writes with every page armed (async write-protect fault each)
//   BM_Scan256MiB/N       PAGEMAP_SCAN collect + re-arm of 256 MiB with N pages written
//   BM_SampledSetWork/ranges  a sampled interval's set work on 1 GiB of scattered runs as range
//                             lists (the tracker's representation until session 13: the baseline)
//   BM_SampledSetWork/bitmap  the same work on PageBitmaps (what the tracker does now)
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <random>

#include <benchmark/benchmark.h>

#include "haywire/glass/page_bitmap.h"
#include "haywire/glass/pagemap_scan.h"
#include "haywire/glass/uffd.h"

namespace haywire::glass {
namespace {

struct Region {
  explicit Region(std::size_t bytes) : size(bytes) {
    mem = static_cast<unsigned char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    std::memset(mem, 1, bytes);  // populated: measure the protection fault, not page allocation
  }
  ~Region() { ::munmap(mem, size); }
  VirtAddr base() const { return VirtAddr(reinterpret_cast<std::uint64_t>(mem)); }
  std::size_t size;
  unsigned char* mem;
};

std::optional<Uffd> async_uffd(const Region& region) {
  auto raw = Uffd::create_raw();
  if (!raw) return std::nullopt;
  auto uffd = Uffd::open(std::move(*raw), UffdFeatures{.wp_async = true, .wp_unpopulated = true});
  if (!uffd || !uffd->register_wp(region.base(), region.size) || !uffd->write_protect(region.base(), region.size, true))
    return std::nullopt;
  return std::move(*uffd);
}

void write_every_page(unsigned char* mem, std::size_t bytes, unsigned char value) {
  for (std::size_t off = 0; off < bytes; off += kPageSize) {
    mem[off] = value;
    benchmark::ClobberMemory();
  }
}

void BM_FirstWrite(benchmark::State& state) {
  const bool tracked = state.range(0) != 0;
  Region region(std::size_t{64} << 20);
  std::optional<Uffd> uffd;
  std::optional<PagemapScanner> scanner;
  if (tracked) {
    uffd = async_uffd(region);
    auto s = PagemapScanner::open(Pid(::getpid()));
    if (!uffd || !s) {
      state.SkipWithError("userfaultfd/PAGEMAP_SCAN unavailable");
      return;
    }
    scanner.emplace(std::move(*s));
  }
  unsigned char value = 2;
  for (auto _ : state) {
    if (tracked) {
      state.PauseTiming();
      (void)scanner->rearm(region.base(), region.base() + region.size);
      state.ResumeTiming();
    }
    write_every_page(region.mem, region.size, value++);
  }
  state.SetLabel(tracked ? "tracked" : "plain");
  // items_per_second is pages written per second; its inverse is the cost per (first) write.
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * (region.size / kPageSize)));
}
BENCHMARK(BM_FirstWrite)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_Scan256MiB(benchmark::State& state) {
  Region region(std::size_t{256} << 20);
  auto uffd = async_uffd(region);
  auto scanner = PagemapScanner::open(Pid(::getpid()));
  if (!uffd || !scanner) {
    state.SkipWithError("userfaultfd/PAGEMAP_SCAN unavailable");
    return;
  }
  const std::size_t written = static_cast<std::size_t>(state.range(0));
  const std::size_t pages = region.size / kPageSize;
  std::vector<PageRange> out;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t i = 0; i < written; ++i) region.mem[(i * 7919 % pages) * kPageSize] = 3;
    out.clear();
    state.ResumeTiming();
    auto n = scanner->collect_written(region.base(), region.base() + region.size, out);
    benchmark::DoNotOptimize(n);
  }
  state.counters["written_pages"] = static_cast<double>(written);
}
BENCHMARK(BM_Scan256MiB)->Arg(0)->Arg(1000)->Arg(65536)->Unit(benchmark::kMicrosecond);

// A sampled interval on 1 GiB written at scattered pages (what `glass-workload random --size
// 1G` leaves after a minute: ~45,000 runs each in the watched set and in the scan's answer).
// Both variants compute the same sets from the same input: the pages read (watched minus the
// thread sampler's carved pages), the written ones among them, the ones known to be armed
// after the walk, the next watched set (those plus the plan's re-armed ranges), and the read
// set as ranges (for the walk and the monitor).
struct SampledSets {
  std::vector<PageRange> frame;
  std::vector<PageRange> watched;
  std::vector<PageRange> unarmed;  // the kernel's answer
  std::vector<PageRange> carved;
  std::vector<PageRange> rearmed;  // the next plan's ranges that needed arming
  SampledSets() {
    const VirtAddr base(std::uint64_t{0x7f0000000000});
    const std::uint64_t pages = std::uint64_t{1} << 18;
    frame.push_back({base, base + pages * kPageSize});
    std::mt19937_64 rng(1);
    auto scattered = [&](unsigned every) {
      std::vector<PageRange> out;
      for (std::uint64_t p = 0; p < pages;) {
        const std::uint64_t run = 1 + rng() % 4;
        append_coalesced(out, {base + p * kPageSize, base + std::min(pages, p + run) * kPageSize});
        p += run + 1 + rng() % every;
      }
      return out;
    };
    watched = scattered(6);
    unarmed = scattered(6);
    for (int i = 0; i < 32; ++i) {
      const VirtAddr page = base + (rng() % pages) * kPageSize;
      carved.push_back({page, page + kPageSize});
    }
    normalize_ranges(carved);
    for (std::uint64_t p = 0; p < pages; p += 128) rearmed.push_back({base + p * kPageSize, base + (p + 12) * kPageSize});
  }
};

void BM_SampledSetWork(benchmark::State& state) {
  static const SampledSets sets;
  const bool bitmap = state.range(0) != 0;
  std::size_t runs = 0;
  for (auto _ : state) {
    if (bitmap) {
      PageBitmap read(sets.frame);
      read.add(sets.watched);
      read.remove(sets.carved);
      std::vector<PageRange> read_ranges = read.ranges();
      PageBitmap unarmed(sets.frame);
      unarmed.add(sets.unarmed);
      PageBitmap known(sets.frame);
      known.fill();
      known.subtract(unarmed);
      known.remove(sets.carved);
      unarmed &= read;
      std::vector<PageRange> written = unarmed.ranges();
      known.add(sets.rearmed);
      runs = read_ranges.size() + written.size();
      benchmark::DoNotOptimize(known);
    } else {
      std::vector<PageRange> read = subtract_ranges(sets.watched, sets.carved);
      std::vector<PageRange> written = intersect_ranges(sets.unarmed, read);
      std::vector<PageRange> known = subtract_ranges(subtract_ranges(sets.frame, sets.unarmed), sets.carved);
      std::vector<PageRange> next = union_ranges(known, sets.rearmed);
      runs = read.size() + written.size();
      benchmark::DoNotOptimize(next);
    }
  }
  state.SetLabel(bitmap ? "bitmap" : "ranges");
  state.counters["runs"] = static_cast<double>(runs);
}
BENCHMARK(BM_SampledSetWork)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace haywire::glass

BENCHMARK_MAIN();
