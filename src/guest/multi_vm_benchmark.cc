// Three VMs snapshotted at 20 Hz each (tear detection on), as a daemon watching three guests
// would: every 50 ms period, one round takes a snapshot of each of three RAM files in
// /dev/shm, for ~3 s. No timing asserts; scripts/run-benchmarks.sh prints the figures.
//
//   BM_ThreeVms20Hz/mib:<size>/threads:<1|3>
//     threads 1: one thread snapshots the three VMs one after another each period;
//     threads 3: one thread per VM, each on its own 50 ms schedule.
//   counters
//     cpu_pct        process user+sys CPU (getrusage RUSAGE_SELF) over wall time, in % of one
//                    core (this machine has 2: 200 % is everything)
//     periods        50 ms periods in the run (threads 3: summed over the three schedules)
//     missed         of those, periods without their snapshot(s) finished inside the period
//     round_ms_mean  mean time of one period's work (threads 1: all three snapshots;
//     round_ms_max   threads 3: one snapshot), wall clock
//     cpu_ms_per_round  process CPU time per round: what a round costs without preemption by
//                    other processes (a round fits its period on an idle core if < 50 ms)
//     deadline_met   1 if missed == 0
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/ram.h"
#include "haywire/guest/snapshot.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr auto kPeriod = std::chrono::milliseconds(50);  // 20 Hz
constexpr int kPeriods = 60;                              // ~3 s
constexpr int kVms = 3;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "multi_vm_benchmark: %s\n", what);
  std::abort();
}

double process_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

struct Vm {
  FakeRamFile file;
  GuestRam ram;
  Snapshot snap;

  Vm(std::uint64_t size, int index)
      : file(size, "bench_vm" + std::to_string(index)), ram(open(file, index)), snap(size) {}

  static GuestRam open(const FakeRamFile& f, int index) {
    f.fill_random(static_cast<std::uint64_t>(index) + 1);
    auto r = GuestRam::open(f.path(), f.size());
    if (!r) die("GuestRam::open failed");
    return std::move(*r);
  }
  void snapshot() {
    auto report = take_snapshot(ram, snap);  // tear detection on (the default)
    if (!report) die("take_snapshot failed");
  }
};

struct Schedule {
  int missed = 0;
  double work_seconds = 0;
  double work_max = 0;
  int rounds = 0;
};

// Runs `work` once per period for kPeriods periods starting at t0. A round that overruns its
// period makes the schedule skip to the next period boundary: every period without a round
// finished inside it counts as missed.
template <class Work>
Schedule run_schedule(Clock::time_point t0, Work&& work) {
  Schedule s;
  const Clock::time_point end = t0 + kPeriods * kPeriod;
  Clock::time_point release = t0;
  int on_time = 0;
  while (release < end) {
    std::this_thread::sleep_until(release);
    const Clock::time_point start = Clock::now();
    work();
    const Clock::time_point done = Clock::now();
    const double took = std::chrono::duration<double>(done - start).count();
    s.work_seconds += took;
    s.work_max = std::max(s.work_max, took);
    ++s.rounds;
    if (done <= release + kPeriod) ++on_time;
    release += kPeriod;
    if (done > release) {  // overran: skip to the first period boundary at or after `done`
      const auto periods = (done - t0 + kPeriod - Clock::duration(1)) / kPeriod;
      release = t0 + periods * kPeriod;
    }
  }
  s.missed = kPeriods - on_time;
  return s;
}

void BM_ThreeVms20Hz(benchmark::State& state) {
  const auto size = static_cast<std::uint64_t>(state.range(0)) * kMiB;
  const bool per_vm_threads = state.range(1) > 1;
  std::vector<std::unique_ptr<Vm>> vms;
  for (int i = 0; i < kVms; ++i) vms.push_back(std::make_unique<Vm>(size, i));
  for (auto& vm : vms) vm->snapshot();  // warm-up: buffers faulted in, caches in steady state

  std::vector<Schedule> schedules(per_vm_threads ? kVms : 1);
  double wall = 0;
  double cpu = 0;
  for (auto _ : state) {
    const double cpu0 = process_cpu_seconds();
    const Clock::time_point t0 = Clock::now();
    if (per_vm_threads) {
      std::vector<std::thread> threads;
      for (int i = 0; i < kVms; ++i)
        threads.emplace_back([&, i] { schedules[i] = run_schedule(t0, [&] { vms[i]->snapshot(); }); });
      for (auto& t : threads) t.join();
    } else {
      schedules[0] = run_schedule(t0, [&] {
        for (auto& vm : vms) vm->snapshot();
      });
    }
    wall = std::chrono::duration<double>(Clock::now() - t0).count();
    cpu = process_cpu_seconds() - cpu0;
    state.SetIterationTime(wall);
  }

  int missed = 0;
  int rounds = 0;
  double work = 0;
  double work_max = 0;
  for (const Schedule& s : schedules) {
    missed += s.missed;
    rounds += s.rounds;
    work += s.work_seconds;
    work_max = std::max(work_max, s.work_max);
  }
  state.counters["cpu_pct"] = 100.0 * cpu / wall;
  state.counters["periods"] = static_cast<double>(kPeriods * schedules.size());
  state.counters["missed"] = missed;
  state.counters["round_ms_mean"] = 1e3 * work / rounds;
  state.counters["round_ms_max"] = 1e3 * work_max;
  state.counters["cpu_ms_per_round"] = 1e3 * cpu / rounds;
  state.counters["deadline_met"] = missed == 0 ? 1 : 0;
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<std::uint64_t>(rounds) * size *
                                                    (per_vm_threads ? 1 : kVms)));
}
BENCHMARK(BM_ThreeVms20Hz)
    ->ArgNames({"mib", "threads"})
    ->Args({64, 1})
    ->Args({64, 3})
    ->Args({256, 1})
    ->Args({256, 3})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace haywire::guest

BENCHMARK_MAIN();
