// Cost of write tracking, measured on this process's own memory:
//   BM_FirstWrite/plain   one write per page of populated memory, untracked (the baseline)
//   BM_FirstWrite/tracked the same writes with every page armed (async write-protect fault each)
//   BM_Scan256MiB/N       PAGEMAP_SCAN collect + re-arm of 256 MiB with N pages written
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include <benchmark/benchmark.h>

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

}  // namespace
}  // namespace haywire::glass

BENCHMARK_MAIN();
