// Page-table benchmarks over a kernel address space: cached translations, uncached walks
// (and their ratio, measured interleaved in one benchmark), batches, reads and the full
// enumeration. No timing asserts: docs/PERFORMANCE-arch.md records the figures.
//
// The address space is the real guest's when these are set (record one with
// `haywire mem snapshot NAME -o FILE` while the VM is paused, and its CR3 from
// `info registers`):
//   HAYWIRE_BENCH_RAM=FILE        RAM file, guest-physical = file offset (q35 guests <= 2 GiB)
//   HAYWIRE_BENCH_CR3=0x...       CR3 at the time of the snapshot
//   HAYWIRE_BENCH_LEVELS=4|5      paging levels (CR4.LA57), default 4
//   HAYWIRE_BENCH_PHYS_BITS=N     MAXPHYADDR, default 52
// Otherwise a synthetic Linux-like kernel address space built by PageTableBuilder (direct
// map in 2 MiB pages, kernel text, thousands of scattered vmalloc and module pages, vmemmap,
// fixmap, a user process), so the benchmarks always run.
//
// Addresses: kAddressCount byte addresses in a working set of N distinct kernel pages (N is
// the benchmark argument "pages"), pages drawn from every mapped kernel range in proportion
// to its size (capped at 512 pages a range, so that the direct map does not drown the rest).
//
//   BM_CachedTranslate/pages:N   AddressSpace::translate with a warm 64 Ki-entry cache
//   BM_UncachedWalk/pages:N      walk() of the same addresses
//   BM_CachedVsUncached/pages:N  both, interleaved in rounds; counters cached_per_s,
//                                uncached_per_s and ratio (cached / uncached rate) from
//                                per-thread CPU time
//   BM_TranslateBatch/fresh:0|1   translate_batch of 4096 addresses
//   BM_ReadVa/<len>         AddressSpace::read across pages (cached)
//   BM_EnumerateKernel      enumerate(kernel half); BM_EnumerateAll: both halves
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "arch/testing/page_table_builder.h"
#include "guest/testing/fake_ram_file.h"
#include "haywire/arch/address_space.h"
#include "haywire/arch/enumerate.h"
#include "haywire/arch/walker.h"
#include "haywire/base/parse.h"

namespace haywire::arch {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::size_t kAddressCount = 1 << 16;  // sampled kernel addresses, reused round-robin

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "arch_benchmark: %s\n", what.c_str());
  std::abort();
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

std::optional<std::uint64_t> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  auto n = parse_u64(v);
  if (!n) die(std::string(name) + ": " + n.error().message());
  return *n;
}

// A Linux-like kernel (plus one process) in 64 MiB of fake RAM, 4-level paging.
void build_synthetic(testing::PageTableBuilder& pt, std::uint64_t ram_size) {
  std::mt19937_64 rng(42);
  const std::uint64_t rw_nx = pte::kWritable | pte::kNoExecute | pte::kGlobal | pte::kAccessed | pte::kDirty;
  // Direct map: the first 2 MiB in 4 KiB pages (mixed permissions, as Linux does), the rest in 2 MiB.
  const std::uint64_t direct = 0xffff'8880'0000'0000ull;
  pt.map_range(VirtAddr(direct), PhysAddr(0), kPage2M, kPage4K, rw_nx);
  pt.map_range(VirtAddr(direct + kPage2M), PhysAddr(kPage2M), ram_size - kPage2M, kPage2M, rw_nx);
  // Kernel image: text and rodata in 2 MiB pages, data and bss in 4 KiB pages.
  const std::uint64_t text = 0xffff'ffff'8100'0000ull;
  pt.map_range(VirtAddr(text), PhysAddr(0x100'0000), 12 * kMiB, kPage2M, pte::kGlobal | pte::kAccessed);
  pt.map_range(VirtAddr(text + 12 * kMiB), PhysAddr(0x1c0'0000), 4 * kMiB, kPage4K, rw_nx);
  // vmalloc (stacks, buffers): 3000 pages in groups of 4 (a stack and its guard gap), scattered.
  const std::uint64_t vmalloc = 0xffff'c900'0000'0000ull;
  for (std::uint64_t i = 0; i < 750; ++i)
    for (std::uint64_t j = 0; j < 4; ++j)
      pt.map(VirtAddr(vmalloc + i * 5 * kPage4K + j * kPage4K), PhysAddr((rng() % (ram_size / kPage4K)) * kPage4K),
             kPage4K, rw_nx);
  // vmemmap (struct page array): 2 MiB pages.
  pt.map_range(VirtAddr(0xffff'ea00'0000'0000ull), PhysAddr(0x200'0000), 4 * kMiB, kPage2M, rw_nx);
  // Modules: 600 pages, text read-only and executable.
  const std::uint64_t modules = 0xffff'ffff'c000'0000ull;
  for (std::uint64_t i = 0; i < 600; ++i)
    pt.map(VirtAddr(modules + i * kPage4K), PhysAddr((rng() % (ram_size / kPage4K)) * kPage4K), kPage4K,
           i % 3 == 0 ? pte::kGlobal : rw_nx);
  // Fixmap / APIC.
  pt.map(VirtAddr(0xffff'ffff'ff5f'c000ull), PhysAddr(0xfec0'0000), kPage4K, rw_nx);
  pt.map(VirtAddr(0xffff'ffff'ff5f'd000ull), PhysAddr(0xfee0'0000), kPage4K, rw_nx);
  // A user process: binary, heap, libraries, stack.
  const std::uint64_t user = pte::kUser | pte::kWritable | pte::kAccessed;
  for (std::uint64_t base : {0x40'0000ull, 0x5555'5555'0000ull, 0x7f12'3456'0000ull, 0x7ffd'0000'0000ull})
    for (std::uint64_t i = 0; i < 500; ++i)
      pt.map(VirtAddr(base + i * kPage4K), PhysAddr((rng() % (ram_size / kPage4K)) * kPage4K), kPage4K, user);
}

struct Space {
  std::unique_ptr<guest::testing::FakeRamFile> fake;  // synthetic only
  std::optional<guest::GuestRam> ram;
  PagingMode mode;
  Cr3 cr3;
  std::string source;

  Space() {
    if (const char* path = std::getenv("HAYWIRE_BENCH_RAM"); path != nullptr && *path != '\0') {
      auto r = guest::GuestRam::open(path);
      if (!r) die(r.error().message());
      ram.emplace(std::move(*r));
      const auto cr3_value = env_number("HAYWIRE_BENCH_CR3");
      if (!cr3_value) die("HAYWIRE_BENCH_RAM needs HAYWIRE_BENCH_CR3");
      cr3 = Cr3(*cr3_value);
      mode = PagingMode::make(static_cast<int>(env_number("HAYWIRE_BENCH_LEVELS").value_or(4)),
                              static_cast<unsigned>(env_number("HAYWIRE_BENCH_PHYS_BITS").value_or(52)));
      source = std::string("recorded guest ") + path;
    } else {
      constexpr std::uint64_t kRam = 64 * kMiB;
      fake = std::make_unique<guest::testing::FakeRamFile>(kRam, "bench_arch");
      testing::PageTableBuilder pt(fake->guest(), 4, PhysAddr(48 * kMiB));
      build_synthetic(pt, 48 * kMiB);
      auto r = guest::GuestRam::open(fake->path(), kRam);
      if (!r) die(r.error().message());
      ram.emplace(std::move(*r));
      cr3 = pt.cr3();
      mode = PagingMode::four_level();
      source = "synthetic kernel";
    }
    sample_addresses();
  }

  std::vector<MappedRange> kernel_ranges;
  std::vector<std::uint64_t> weight_end;  // cumulative pages (capped per range)

  // The kernel's ranges, for sampling pages from them.
  void sample_addresses() {
    const Enumeration e = enumerate(*ram, mode, cr3, {.half = Half::kKernel});
    if (e.ranges.empty()) die("no kernel mappings under this CR3 (wrong CR3 or levels?)");
    kernel_ranges = e.ranges;
    std::uint64_t total = 0;
    for (const MappedRange& r : kernel_ranges) {
      total += std::min<std::uint64_t>(r.size / kPage4K, 512);
      weight_end.push_back(total);
    }
  }

  // kAddressCount addresses, 8-aligned, within `pages` distinct random kernel pages.
  [[nodiscard]] std::vector<VirtAddr> working_set(std::size_t pages) const {
    std::mt19937_64 rng(pages);
    std::vector<VirtAddr> page_list;
    while (page_list.size() < pages) {
      const std::uint64_t pick = rng() % weight_end.back();
      const auto i = static_cast<std::size_t>(std::upper_bound(weight_end.begin(), weight_end.end(), pick) -
                                              weight_end.begin());
      const MappedRange& r = kernel_ranges[i];
      page_list.push_back(r.va + ((rng() % r.size) & ~(kPage4K - 1)));
    }
    std::vector<VirtAddr> out;
    out.reserve(kAddressCount);
    for (std::size_t k = 0; k < kAddressCount; ++k) out.push_back(page_list[rng() % pages] + ((rng() % kPage4K) & ~7ull));
    return out;
  }
};

Space& space() {
  static Space s;
  return s;
}

void label(benchmark::State& state) {
  const Space& s = space();
  state.SetLabel(std::to_string(s.mode.levels()) + "-level " + s.source);
}

void BM_CachedTranslate(benchmark::State& state) {
  Space& s = space();
  const std::vector<VirtAddr> vas = s.working_set(static_cast<std::size_t>(state.range(0)));
  TranslationCache cache(1 << 16);
  const AddressSpace as(*s.ram, s.mode, s.cr3, &cache);
  for (VirtAddr va : vas) benchmark::DoNotOptimize(as.translate(va));  // warm
  std::size_t i = 0;
  std::uint64_t sink = 0;
  for (auto _ : state) {
    sink += as.translate(vas[i]).pa.value();
    i = (i + 1) & (kAddressCount - 1);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["hit_rate"] = static_cast<double>(cache.hits()) / static_cast<double>(cache.hits() + cache.misses());
  label(state);
}
BENCHMARK(BM_CachedTranslate)->ArgName("pages")->Arg(1024)->Arg(16384)->Arg(65536);

void BM_UncachedWalk(benchmark::State& state) {
  Space& s = space();
  const std::vector<VirtAddr> vas = s.working_set(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0;
  std::uint64_t sink = 0;
  for (auto _ : state) {
    sink += walk(*s.ram, s.mode, s.cr3, vas[i]).pa.value();
    i = (i + 1) & (kAddressCount - 1);
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  label(state);
}
BENCHMARK(BM_UncachedWalk)->ArgName("pages")->Arg(1024)->Arg(16384)->Arg(65536);

// One iteration = one round of all kAddressCount addresses through the cache, then the same
// through fresh walks; rates from per-thread CPU time, so both see the same machine state.
void BM_CachedVsUncached(benchmark::State& state) {
  Space& s = space();
  const std::vector<VirtAddr> vas = s.working_set(static_cast<std::size_t>(state.range(0)));
  TranslationCache cache(1 << 16);
  const AddressSpace as(*s.ram, s.mode, s.cr3, &cache);
  for (VirtAddr va : vas) benchmark::DoNotOptimize(as.translate(va));
  double cached_s = 0, uncached_s = 0;
  std::uint64_t sink = 0;
  for (auto _ : state) {
    double t0 = thread_cpu_seconds();
    for (VirtAddr va : vas) sink += as.translate(va).pa.value();
    double t1 = thread_cpu_seconds();
    for (VirtAddr va : vas) sink += as.translate(va, Lookup::kFresh).pa.value();
    double t2 = thread_cpu_seconds();
    cached_s += t1 - t0;
    uncached_s += t2 - t1;
  }
  benchmark::DoNotOptimize(sink);
  const double n = static_cast<double>(state.iterations()) * kAddressCount;
  state.counters["cached_per_s"] = n / cached_s;
  state.counters["uncached_per_s"] = n / uncached_s;
  state.counters["ratio"] = uncached_s / cached_s;
  state.counters["hit_rate"] = static_cast<double>(cache.hits()) / static_cast<double>(cache.hits() + cache.misses());
  label(state);
}
BENCHMARK(BM_CachedVsUncached)->ArgName("pages")->Arg(1024)->Arg(16384)->Arg(65536)->Unit(benchmark::kMillisecond);

void BM_TranslateBatch(benchmark::State& state) {
  Space& s = space();
  TranslationCache cache(1 << 16);
  const AddressSpace as(*s.ram, s.mode, s.cr3, &cache);
  const Lookup lookup = state.range(0) != 0 ? Lookup::kFresh : Lookup::kCached;
  const std::vector<VirtAddr> vas = s.working_set(16384);
  constexpr std::size_t kBatch = 4096;
  std::vector<Translation> out(kBatch);
  std::size_t at = 0;
  for (auto _ : state) {
    as.translate_batch(std::span(vas).subspan(at, kBatch), out, lookup);
    benchmark::DoNotOptimize(out.data());
    at = (at + kBatch) % kAddressCount;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
  label(state);
}
BENCHMARK(BM_TranslateBatch)->ArgName("fresh")->Arg(0)->Arg(1);

void BM_ReadVa(benchmark::State& state) {
  Space& s = space();
  TranslationCache cache(1 << 16);
  const AddressSpace as(*s.ram, s.mode, s.cr3, &cache);
  const std::vector<VirtAddr> vas = s.working_set(16384);
  std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)));
  std::size_t i = 0, complete = 0;
  for (auto _ : state) {
    const ReadResult r = as.read(vas[i], buf);
    complete += r.complete() ? 1 : 0;
    benchmark::DoNotOptimize(buf.data());
    i = (i + 1) & (kAddressCount - 1);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  state.counters["complete"] = static_cast<double>(complete) / static_cast<double>(state.iterations());
  label(state);
}
BENCHMARK(BM_ReadVa)->Arg(64)->Arg(4096)->Arg(65536);

void enumerate_bench(benchmark::State& state, Half half) {
  Space& s = space();
  std::size_t ranges = 0, tables = 0;
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const Enumeration e = enumerate(*s.ram, s.mode, s.cr3, {.half = half});
    ranges = e.ranges.size();
    tables = e.tables_expanded;
    bytes = e.mapped_bytes;
    benchmark::DoNotOptimize(e.ranges.data());
  }
  state.counters["ranges"] = static_cast<double>(ranges);
  state.counters["tables"] = static_cast<double>(tables);
  state.counters["mapped_MiB"] = static_cast<double>(bytes >> 20);
  label(state);
}
void BM_EnumerateKernel(benchmark::State& state) { enumerate_bench(state, Half::kKernel); }
void BM_EnumerateAll(benchmark::State& state) { enumerate_bench(state, Half::kAll); }
BENCHMARK(BM_EnumerateKernel)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EnumerateAll)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace haywire::arch

BENCHMARK_MAIN();
