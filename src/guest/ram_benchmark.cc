// Guest-RAM benchmarks: zero-copy reads and 64 MiB snapshots, each against a baseline measured
// in the same run. No timing asserts: scripts/run-benchmarks.sh prints the figures and
// docs/PERFORMANCE.md records them.
//
//   BM_ReadPa/<len>            read_pa span over a two-region (q35 > 2 GiB) layout; O(1) in len
//   BM_ReadPaInto/<len>        the copying read of the same lengths, for contrast (O(len))
//   BM_Memcpy64MiB             baseline: memcpy of the mapped 64 MiB into a pre-faulted buffer
//   BM_Snapshot64MiB/tears:0|1/seek_data:0|1
//                              take_snapshot; counter vs_memcpy = memcpy time / snapshot time,
//                              the memcpy re-measured before every snapshot (interleaved), so
//                              load on the machine hits both sides alike
//   BM_DataRanges/mib:<n>      GuestRam::data_ranges (SEEK_DATA/SEEK_HOLE), which every
//                              take_snapshot(GuestRam&) pays
//   BM_SnapshotUnderWrites/rate:<words per s>
//                              tear detection while a "guest" thread writes random words
//                              (rate -1: no writer, 0: unthrottled); counters recopied and
//                              torn pages per snapshot
//
// Times are per-thread CPU time (CLOCK_THREAD_CPUTIME_ID, like Google Benchmark's default
// "CPU" column), so a preemption by another process on this 2-core machine is not counted.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "guest/testing/fake_ram_file.h"
#include "haywire/base/ram_layout.h"
#include "haywire/base/types.h"
#include "haywire/guest/ram.h"
#include "haywire/guest/snapshot.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;

constexpr std::uint64_t kKiB = 1024;
constexpr std::uint64_t kMiB = 1024 * kKiB;
constexpr std::uint64_t kGiB = 1024 * kMiB;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "ram_benchmark: %s\n", what);
  std::abort();
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Minor page faults of the process so far. Reading the RAM file's mapping should not fault once
// warm; a machine that unmaps cold pages (e.g. DAMON pageout) makes every snapshot re-fault.
double minor_faults() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_minflt);
}

// ---------------------------------------------------------------------------------------------
// read_pa: a q35 guest with 3 GiB of RAM: guest [0, 2 GiB) at file offset 0 and guest
// [4 GiB, 5 GiB) at file offset 2 GiB. The tmpfs file is sparse and read_pa never touches the
// bytes, so the 3 GiB cost no memory. BM_ReadPaInto does touch them; it only reads from the
// first kCopyWindow of each region, which the fixture fills.

constexpr std::uint64_t kLowRam = 2 * kGiB;
constexpr std::uint64_t kHighRam = 1 * kGiB;
constexpr std::uint64_t kCopyWindow = 128 * kMiB;
constexpr std::size_t kAddressCount = 4096;  // 32 KiB of addresses: stays in L1/L2

struct TwoRegionRam {
  FakeRamFile file{kLowRam + kHighRam, "bench_read"};
  GuestRam ram = open(file);

  static GuestRam open(const FakeRamFile& f) {
    auto layout = RamLayout::make({RamRegion{PhysAddr(0), kLowRam, 0},
                                   RamRegion{PhysAddr(4 * kGiB), kHighRam, kLowRam}},
                                  f.size());
    if (!layout) die("RamLayout::make failed");
    auto r = GuestRam::open(f.path(), f.size(), std::move(*layout));
    if (!r) die("GuestRam::open failed");
    return std::move(*r);
  }

  // Random byte addresses (8-aligned) such that [a, a + len) lies in one region, the region
  // chosen in proportion to its size (or within the first `window` bytes of each region).
  [[nodiscard]] std::vector<PhysAddr> addresses(std::uint64_t len, std::uint64_t window,
                                                std::uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::vector<PhysAddr> out;
    out.reserve(kAddressCount);
    const auto& regions = ram.layout().regions();
    std::uint64_t total = 0;
    for (const RamRegion& r : regions) total += std::min(r.size, window);
    while (out.size() < kAddressCount) {
      std::uint64_t pick = rng() % total;
      for (const RamRegion& r : regions) {
        const std::uint64_t span = std::min(r.size, window);
        if (pick >= span) {
          pick -= span;
          continue;
        }
        const std::uint64_t slots = (span - len) / 8 + 1;
        out.push_back(r.start + (rng() % slots) * 8);
        break;
      }
    }
    return out;
  }
};

TwoRegionRam& two_region_ram() {
  static TwoRegionRam ram;  // destroyed at exit, which removes the file
  return ram;
}

void BM_ReadPa(benchmark::State& state) {
  const auto len = static_cast<std::uint64_t>(state.range(0));
  TwoRegionRam& r = two_region_ram();
  const std::vector<PhysAddr> addrs = r.addresses(len, ~std::uint64_t{0}, len);
  std::size_t i = 0;
  for (auto _ : state) {
    auto view = r.ram.read_pa(addrs[i], len);
    benchmark::DoNotOptimize(view);
    i = (i + 1) % kAddressCount;
  }
  state.counters["len_bytes"] = static_cast<double>(len);
}
BENCHMARK(BM_ReadPa)->Arg(64)->Arg(4 * kKiB)->Arg(1 * kMiB)->Arg(64 * kMiB);

void BM_ReadPaInto(benchmark::State& state) {
  const auto len = static_cast<std::uint64_t>(state.range(0));
  TwoRegionRam& r = two_region_ram();
  static const bool filled = [&r] {
    // Give the copied windows real pages (random bytes) so the copy reads memory, not holes.
    std::mt19937_64 rng(7);
    for (const RamRegion& region : r.ram.layout().regions()) {
      auto* words = reinterpret_cast<std::uint64_t*>(r.file.guest().data() + region.file_offset);
      for (std::uint64_t w = 0; w < kCopyWindow / 8; ++w) words[w] = rng();
    }
    return true;
  }();
  (void)filled;
  const std::vector<PhysAddr> addrs = r.addresses(len, kCopyWindow, len + 1);
  auto out = std::make_unique<std::byte[]>(len);  // value-initialised: pre-faulted
  std::size_t i = 0;
  for (auto _ : state) {
    auto ok = r.ram.read_pa_into(addrs[i], {out.get(), len});
    benchmark::DoNotOptimize(ok);
    benchmark::ClobberMemory();
    i = (i + 1) % kAddressCount;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * len));
  state.counters["len_bytes"] = static_cast<double>(len);
}
BENCHMARK(BM_ReadPaInto)->Arg(64)->Arg(4 * kKiB)->Arg(1 * kMiB)->Arg(64 * kMiB);

// ---------------------------------------------------------------------------------------------
// 64 MiB snapshots of one RAM file in /dev/shm filled with random bytes.

constexpr std::uint64_t kSnapshotSize = 64 * kMiB;

struct SnapshotSource {
  FakeRamFile file{kSnapshotSize, "bench_snap"};
  GuestRam ram = open(file);
  std::unique_ptr<std::byte[]> memcpy_dst = std::make_unique<std::byte[]>(kSnapshotSize);

  static GuestRam open(const FakeRamFile& f) {
    f.fill_random(42);
    auto r = GuestRam::open(f.path(), f.size());
    if (!r) die("GuestRam::open failed");
    return std::move(*r);
  }
  // One timed memcpy of the mapping into the pre-faulted baseline buffer, in seconds.
  double time_memcpy() {
    const double t0 = thread_cpu_seconds();
    std::memcpy(memcpy_dst.get(), ram.file_bytes().data(), kSnapshotSize);
    benchmark::ClobberMemory();
    return thread_cpu_seconds() - t0;
  }
};

SnapshotSource& snapshot_source() {
  static SnapshotSource source;
  return source;
}

void BM_Memcpy64MiB(benchmark::State& state) {
  SnapshotSource& s = snapshot_source();
  s.time_memcpy();  // warm-up
  for (auto _ : state) state.SetIterationTime(s.time_memcpy());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSnapshotSize));
}
BENCHMARK(BM_Memcpy64MiB)->UseManualTime()->Unit(benchmark::kMillisecond);

// GuestRam::data_ranges(), which take_snapshot(GuestRam&) calls every time: SEEK_DATA and
// SEEK_HOLE over a fully written tmpfs file (one data range). Compare with BM_Memcpy64MiB.
void BM_DataRanges(benchmark::State& state) {
  const auto size = static_cast<std::uint64_t>(state.range(0)) * kMiB;
  FakeRamFile file(size, "bench_ranges");
  file.fill_random(5);
  auto ram = GuestRam::open(file.path(), size);
  if (!ram) die("GuestRam::open failed");
  std::size_t ranges = 0;
  for (auto _ : state) {
    auto r = ram->data_ranges();
    ranges = r.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["ranges"] = static_cast<double>(ranges);
}
BENCHMARK(BM_DataRanges)->ArgName("mib")->Arg(64)->Arg(256)->Unit(benchmark::kMillisecond);

// seek_data 1: take_snapshot(GuestRam&), what callers use: it asks the file for its data
// ranges (SEEK_DATA/SEEK_HOLE) every call so holes are zero-filled, not read.
// seek_data 0: take_snapshot(span) over the same mapping: the copy alone.
void BM_Snapshot64MiB(benchmark::State& state) {
  SnapshotSource& s = snapshot_source();
  const SnapshotOptions options{.detect_tears = state.range(0) != 0};
  const bool seek_data = state.range(1) != 0;
  Snapshot snap(kSnapshotSize);
  auto take = [&] {
    return seek_data ? take_snapshot(s.ram, snap, options)
                     : take_snapshot(s.ram.file_bytes(), snap, options);
  };
  if (!take()) die("take_snapshot failed");  // warm-up
  double memcpy_seconds = 0;
  double snapshot_seconds = 0;
  std::uint64_t recopied = 0;
  const double faults0 = minor_faults();
  for (auto _ : state) {
    memcpy_seconds += s.time_memcpy();
    const double t0 = thread_cpu_seconds();
    auto report = take();
    benchmark::ClobberMemory();
    const double t = thread_cpu_seconds() - t0;
    if (!report) die("take_snapshot failed");
    recopied += report->recopied_pages;
    snapshot_seconds += t;
    state.SetIterationTime(t);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSnapshotSize));
  const auto n = static_cast<double>(state.iterations());
  state.counters["vs_memcpy"] = memcpy_seconds / snapshot_seconds;
  state.counters["memcpy_ms"] = memcpy_seconds / n * 1e3;
  state.counters["recopied"] = static_cast<double>(recopied) / n;
  state.counters["minflt_per_iter"] = (minor_faults() - faults0) / n;
}
BENCHMARK(BM_Snapshot64MiB)
    ->ArgNames({"tears", "seek_data"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 0})
    ->Args({1, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// A "guest" thread stores one 8-byte word into a random page `rate` times per second (0: as
// fast as it can) while the benchmark thread takes tear-detecting snapshots.
class RandomWriter {
 public:
  RandomWriter(std::span<std::byte> ram, std::uint64_t rate) : ram_(ram), rate_(rate) {
    thread_ = std::thread([this] { run(); });
  }
  RandomWriter(const RandomWriter&) = delete;
  RandomWriter& operator=(const RandomWriter&) = delete;
  ~RandomWriter() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  [[nodiscard]] std::uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  void run() {
    std::mt19937_64 rng(99);
    const std::uint64_t words = ram_.size() / 8;
    auto* base = reinterpret_cast<std::uint64_t*>(ram_.data());
    using Clock = std::chrono::steady_clock;
    // Writes go out in bursts every 100 µs so the thread sleeps between them.
    constexpr auto kTick = std::chrono::microseconds(100);
    const std::uint64_t per_tick = rate_ == 0 ? 4096 : std::max<std::uint64_t>(1, rate_ / 10000);
    auto next = Clock::now();
    std::uint64_t n = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      for (std::uint64_t i = 0; i < per_tick; ++i) {
        std::atomic_ref<std::uint64_t>(base[rng() % words]).store(++n, std::memory_order_relaxed);
      }
      writes_.store(n, std::memory_order_relaxed);
      if (rate_ != 0) {
        next += kTick;
        std::this_thread::sleep_until(next);
      }
    }
  }

  std::span<std::byte> ram_;
  std::uint64_t rate_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> writes_{0};
  std::thread thread_;
};

void BM_SnapshotUnderWrites(benchmark::State& state) {
  SnapshotSource& s = snapshot_source();
  Snapshot snap(kSnapshotSize);
  if (!take_snapshot(s.ram, snap)) die("take_snapshot failed");  // warm-up
  // rate < 0: no writer thread at all (the baseline of this family).
  std::optional<RandomWriter> writer;
  if (state.range(0) >= 0) writer.emplace(s.file.guest(), static_cast<std::uint64_t>(state.range(0)));
  auto writes = [&] { return writer ? writer->writes() : 0; };
  std::uint64_t recopied = 0;
  std::uint64_t torn = 0;
  const std::uint64_t writes_before = writes();
  const double faults0 = minor_faults();
  const auto wall0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    const double t0 = thread_cpu_seconds();
    auto report = take_snapshot(s.ram, snap);
    const double t = thread_cpu_seconds() - t0;
    if (!report) die("take_snapshot failed");
    recopied += report->recopied_pages;
    torn += report->torn_pages.size();
    state.SetIterationTime(t);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const auto n = static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kSnapshotSize));
  state.counters["recopied_per_snap"] = static_cast<double>(recopied) / n;
  state.counters["torn_per_snap"] = static_cast<double>(torn) / n;
  state.counters["writes_per_s"] = static_cast<double>(writes() - writes_before) / wall;
  state.counters["minflt_per_snap"] = (minor_faults() - faults0) / n;
}
BENCHMARK(BM_SnapshotUnderWrites)
    ->ArgName("rate")
    ->Arg(-1)
    ->Arg(10'000)
    ->Arg(1'000'000)
    ->Arg(0)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);


}  // namespace
}  // namespace haywire::guest

BENCHMARK_MAIN();
