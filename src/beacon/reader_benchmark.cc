// Reader benchmarks (issue 4 targets), each beside a memcpy baseline of the same bytes:
//   PID list read ≤ 20 µs; focus switch from round-robin data ≤ 1 ms; discovery scan per GiB
//   (≤ 1 ms per GiB once the mapping is populated; the first touch of a fresh mapping is
//   measured separately, honestly).
// The area is written by the test-only writer (testing/area_writer.h) into a fake RAM file.
#include <benchmark/benchmark.h>

#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "beacon/testing/area_writer.h"
#include "guest/testing/fake_ram_file.h"
#include "haywire/beacon/reader.h"

namespace haywire::beacon {
namespace {

using guest::testing::FakeRamFile;
using testing::AreaWriter;
using testing::RecordWriter;

constexpr std::uint32_t kProcesses = 200;
constexpr std::uint32_t kSectionsEach = 25;

struct Fixture {
  FakeRamFile file{64 << 20, "bench"};
  AreaWriter area;
  std::uint32_t pids_slot, rr_slot;
  std::optional<guest::GuestRam> ram;
  std::vector<std::span<const std::byte>> pid_spans, rr_spans;
  std::size_t pid_bytes = 0, rr_bytes = 0;

  static std::vector<std::uint64_t> pages() {
    std::vector<std::uint64_t> frames((64 << 20) / kPageSize - 16);
    std::iota(frames.begin(), frames.end(), 16);
    std::shuffle(frames.begin(), frames.end(), std::mt19937_64(7));
    frames.resize(2048);
    for (auto& f : frames) f *= kPageSize;
    return frames;
  }
  Fixture() : area(file.guest(), pages(), 1) {
    pids_slot = area.add_block(BlockType::kPids, 16);
    rr_slot = area.add_block(BlockType::kRoundRobin, 512);
    area.write_table();
    std::vector<std::uint32_t> pids(kProcesses);
    std::iota(pids.begin(), pids.end(), 1);
    RecordWriter w;
    w.pid_list(pids, 1);
    pid_bytes = w.bytes().size();
    area.write_block(pids_slot, w.bytes(), 1);
    RecordWriter rr;
    for (std::uint32_t pid : pids) {
      rr.process({.pid = pid, .ppid = 1, .comm = "worker", .cmdline = "/usr/bin/worker --id " + std::to_string(pid),
                  .section_count = kSectionsEach});
      for (std::uint32_t s = 0; s < kSectionsEach; ++s)
        rr.section(0x400000 + s * 0x10000ULL, 0x400000 + s * 0x10000ULL + 0x8000, "r-xp", 0, "/usr/lib/x86_64-linux-gnu/libc.so.6");
    }
    rr_bytes = rr.bytes().size();
    area.write_block(rr_slot, rr.bytes(), 1);
    area.write_master(1, 1);
    ram.emplace(*guest::GuestRam::open(file.path()));
    for (auto [slot, spans] : {std::pair{pids_slot, &pid_spans}, std::pair{rr_slot, &rr_spans}}) {
      const auto& e = area.master().directory[slot];
      for (std::uint32_t k = 0; k < e.page_count; ++k)
        spans->push_back(*ram->read_pa(PhysAddr(area.page_pa(e.first_page + k)), kPageSize));
    }
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// Full PID list read: seqlock copy of the block, checksum, parse.
void BM_PidListRead(benchmark::State& state) {
  auto& f = fixture();
  BlockCopy copy;
  for (auto _ : state) {
    auto r = copy_block(f.pid_spans, {BlockType::kPids, f.pids_slot, 0}, copy);
    auto c = parse_records(copy.content);
    if (!r || !c || c->pid_list->pids.size() != kProcesses) state.SkipWithError("bad block");
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.pid_bytes));
  state.counters["pids"] = kProcesses;
}
BENCHMARK(BM_PidListRead);

void BM_PidListMemcpyBaseline(benchmark::State& state) {
  auto& f = fixture();
  std::vector<std::byte> out(f.pid_bytes);
  for (auto _ : state) {
    std::memcpy(out.data(), f.pid_spans[0].data() + sizeof(PageHeader), f.pid_bytes);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.pid_bytes));
}
BENCHMARK(BM_PidListMemcpyBaseline);

// Focus switch from round-robin data: a new round-robin generation is copied, parsed, and the
// focused PID's info + sections are returned.
void BM_FocusSwitchRoundRobin(benchmark::State& state) {
  auto& f = fixture();
  BlockCopy copy;
  std::uint32_t pid = 1;
  for (auto _ : state) {
    auto r = copy_block(f.rr_spans, {BlockType::kRoundRobin, f.rr_slot, 0}, copy);
    auto c = parse_records(copy.content);
    if (!r || !c) state.SkipWithError("bad block");
    const Process* found = nullptr;
    for (const Process& p : c->processes)
      if (p.pid == pid) found = &p;
    if (found == nullptr || found->sections.size() != kSectionsEach) state.SkipWithError("pid missing");
    benchmark::DoNotOptimize(found);
    pid = pid % kProcesses + 1;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.rr_bytes));
  state.counters["block_KiB"] = static_cast<double>(f.rr_bytes) / 1024;
}
BENCHMARK(BM_FocusSwitchRoundRobin)->Unit(benchmark::kMicrosecond);

void BM_FocusSwitchMemcpyBaseline(benchmark::State& state) {
  auto& f = fixture();
  std::vector<std::byte> out(f.rr_spans.size() * kPagePayload);
  for (auto _ : state) {
    std::size_t at = 0;
    for (auto span : f.rr_spans) {
      if (at >= f.rr_bytes) break;
      std::memcpy(out.data() + at, span.data() + sizeof(PageHeader), kPagePayload);
      at += kPagePayload;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.rr_bytes));
}
BENCHMARK(BM_FocusSwitchMemcpyBaseline)->Unit(benchmark::kMicrosecond);

// Discovery: one scan over guest RAM, per GiB. The RAM is fully written (no holes) and the
// mapping populated by a first scan before timing.
constexpr std::uint64_t kScanBytes = 1ULL << 30;

FakeRamFile& scan_file() {
  static FakeRamFile f(kScanBytes, "scan");
  static bool written = [] {
    for (std::uint64_t off = 0; off < kScanBytes; off += kPageSize) std::memset(f.guest().data() + off, 0x5a, 64);
    // One master near the end.
    AreaWriter area(f.guest(), {kScanBytes - 8 * kPageSize, kScanBytes - 7 * kPageSize, kScanBytes - 6 * kPageSize}, 9);
    area.write_table();
    area.write_master(1, 1);
    return true;
  }();
  (void)written;
  return f;
}

void BM_DiscoveryScanPerGiB(benchmark::State& state) {
  auto ram = guest::GuestRam::open(scan_file().path());
  (void)scan_for_masters(*ram);  // populate the mapping (first touch, see below)
  for (auto _ : state) {
    auto m = scan_for_masters(*ram);
    if (m.size() != 1) state.SkipWithError("master not found");
    benchmark::DoNotOptimize(m);
  }
  state.counters["GiB"] = static_cast<double>(kScanBytes) / (1ULL << 30);
}
BENCHMARK(BM_DiscoveryScanPerGiB)->Unit(benchmark::kMillisecond);

// First touch: a fresh mapping each iteration, so every page faults in once.
void BM_DiscoveryFirstTouchPerGiB(benchmark::State& state) {
  (void)scan_file();
  for (auto _ : state) {
    auto ram = guest::GuestRam::open(scan_file().path());
    auto m = scan_for_masters(*ram);
    if (m.size() != 1) state.SkipWithError("master not found");
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_DiscoveryFirstTouchPerGiB)->Unit(benchmark::kMillisecond)->Iterations(3);

// Baselines: touching one word per page, and copying the same GiB.
void BM_ScanTouchOneWordPerPageBaseline(benchmark::State& state) {
  auto ram = guest::GuestRam::open(scan_file().path());
  const auto bytes = ram->file_bytes();
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (std::uint64_t off = 0; off < bytes.size(); off += kPageSize) {
      std::uint32_t w;
      std::memcpy(&w, bytes.data() + off, 4);
      sum += w;
    }
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_ScanTouchOneWordPerPageBaseline)->Unit(benchmark::kMillisecond);

void BM_ScanMemcpyGiBBaseline(benchmark::State& state) {
  auto ram = guest::GuestRam::open(scan_file().path());
  std::vector<std::byte> out(64 << 20);
  for (auto _ : state) {
    for (std::uint64_t off = 0; off < kScanBytes; off += out.size()) std::memcpy(out.data(), ram->file_bytes().data() + off, out.size());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_ScanMemcpyGiBBaseline)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace haywire::beacon

BENCHMARK_MAIN();
