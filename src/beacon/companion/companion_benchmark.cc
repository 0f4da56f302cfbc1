// Companion costs against the host's /proc, with baselines in the same run:
//   BM_ReaddirProc              bare readdir of /proc (the floor of PID discovery)
//   BM_BaseCycle/200            PID scan + one round-robin PID + seal/verify/master, with 200
//                               extra sleeping processes; counter cpu_pct_100hz = CPU per cycle
//                               as % of one core at 100 cycles/s (target <= 2)
//   BM_PreadPagemap1GiB         bare pread of the 2 MiB of pagemap behind a touched 1 GiB
//   BM_CameraCycle1GiB          a cycle with one camera on that 1 GiB process (target: camera
//                               part <= 2 ms, i.e. this minus BM_BaseCycle)
//   BM_CompressionRealProcesses RLE ratio (raw pagemap bytes / chunk bytes) over live processes
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <vector>

#include "beacon/companion/camera.h"
#include "beacon/companion/proc.h"
#include "haywire/beacon/companion.h"

namespace haywire::beacon {
namespace {

// Children started for the benchmarks; killed at exit.
struct Children {
  std::vector<pid_t> pids;
  pid_t big = -1;
  ~Children() {
    for (pid_t p : pids) ::kill(p, SIGKILL);
    if (big > 0) ::kill(big, SIGKILL);
    for (pid_t p : pids) ::waitpid(p, nullptr, 0);
    if (big > 0) ::waitpid(big, nullptr, 0);
  }
  void sleepers(std::size_t n) {
    while (pids.size() < n) {
      pid_t p = ::fork();
      if (p == 0) {
        for (;;) ::pause();
      }
      pids.push_back(p);
    }
  }
  pid_t one_gib() {
    if (big > 0) return big;
    int fds[2];
    if (::pipe(fds) != 0) return -1;
    big = ::fork();
    if (big == 0) {
      std::size_t bytes = 1ULL << 30;
      auto* p = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
      char ok = 1;
      (void)!::write(fds[1], &ok, 1);
      for (;;) ::pause();
    }
    char ok = 0;
    ::close(fds[1]);
    (void)!::read(fds[0], &ok, 1);
    ::close(fds[0]);
    return big;
  }
};
Children g_children;

double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

std::string ram_file(std::size_t bytes) {
  std::string path = "/dev/shm/haywire_companion_bench_" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  (void)!::ftruncate(fd, static_cast<off_t>(bytes));
  ::close(fd);
  return path;
}

void BM_ReaddirProc(benchmark::State& state) {
  g_children.sleepers(200);
  std::vector<std::uint32_t> pids;
  for (auto _ : state) {
    companion::scan_pids_into("/proc", pids);
    benchmark::DoNotOptimize(pids.data());
  }
  state.counters["pids"] = static_cast<double>(pids.size());
}
BENCHMARK(BM_ReaddirProc);

void BM_BaseCycle(benchmark::State& state) {
  g_children.sleepers(static_cast<std::size_t>(state.range(0)));
  std::string path = ram_file(16 << 20);
  CompanionOptions o;
  o.ram_file = path;
  auto c = Companion::start(o);
  ::unlink(path.c_str());
  if (!c) {
    state.SkipWithError("companion start failed");
    return;
  }
  // Warm up: one pass of round-robin over every PID so the table is full size.
  for (std::size_t i = 0; i < scan_pids("/proc").size(); ++i) (void)(*c)->run_cycle();
  double cpu0 = thread_cpu_ns();
  std::uint32_t pids = 0;
  for (auto _ : state) {
    auto st = (*c)->run_cycle();
    pids = st ? st->pids : 0;
  }
  double per_cycle = (thread_cpu_ns() - cpu0) / static_cast<double>(state.iterations());
  state.counters["cpu_us_per_cycle"] = per_cycle / 1e3;
  state.counters["cpu_pct_100hz"] = per_cycle / 1e7 * 100.0;
  state.counters["pids"] = pids;
}
BENCHMARK(BM_BaseCycle)->Arg(200)->Unit(benchmark::kMicrosecond);

void BM_PreadPagemap1GiB(benchmark::State& state) {
  pid_t pid = g_children.one_gib();
  std::vector<companion::Section> sections;
  std::string text;
  bool truncated = false;
  companion::read_sections("/proc", static_cast<std::uint32_t>(pid), sections, 1 << 16, truncated, text);
  int fd = ::open(("/proc/" + std::to_string(pid) + "/pagemap").c_str(), O_RDONLY);
  std::vector<std::uint64_t> buf(32768);
  std::uint64_t pages = 0;
  for (auto _ : state) {
    pages = 0;
    for (const auto& s : sections) {
      for (std::uint64_t p = s.start / 4096; p < s.end / 4096;) {
        std::uint64_t n = std::min<std::uint64_t>(buf.size(), s.end / 4096 - p);
        ssize_t got = ::pread(fd, buf.data(), n * 8, static_cast<off_t>(p * 8));
        if (got <= 0) break;
        p += static_cast<std::uint64_t>(got) / 8;
        pages += static_cast<std::uint64_t>(got) / 8;
      }
    }
  }
  ::close(fd);
  state.counters["pages"] = static_cast<double>(pages);
}
BENCHMARK(BM_PreadPagemap1GiB)->Unit(benchmark::kMillisecond);

void BM_CameraCycle1GiB(benchmark::State& state) {
  pid_t pid = g_children.one_gib();
  std::string path = ram_file(32 << 20);
  CompanionOptions o;
  o.ram_file = path;
  o.area_bytes = 32 << 20;
  o.camera_pages = 2048;  // room for 1 GiB of scattered frames (~262k runs)
  o.prealloc_cameras = 1;
  auto c = Companion::start(o);
  if (!c) {
    ::unlink(path.c_str());
    state.SkipWithError("companion start failed");
    return;
  }
  int fd = ::open(path.c_str(), O_RDWR);
  std::uint32_t prio = 1;
  std::uint64_t word = static_cast<std::uint32_t>(pid) | (1ULL << 32);
  (void)!::pwrite(fd, &prio, 4, kCameraRequestOffset + 8);
  (void)!::pwrite(fd, &word, 8, kCameraRequestOffset);
  ::close(fd);
  ::unlink(path.c_str());
  CycleStats last;
  for (auto _ : state) {
    auto st = (*c)->run_cycle();
    if (st) last = *st;
  }
  state.counters["pagemap_pages"] = static_cast<double>(last.pagemap_pages);
  state.counters["rle_kib"] = static_cast<double>(last.rle_bytes) / 1024.0;
  state.counters["ratio"] = last.rle_bytes ? static_cast<double>(last.pagemap_pages * 8) / static_cast<double>(last.rle_bytes) : 0;
  state.counters["cameras_updated"] = last.cameras_updated;
}
BENCHMARK(BM_CameraCycle1GiB)->Unit(benchmark::kMillisecond);

void BM_CompressionRealProcesses(benchmark::State& state) {
  std::vector<std::uint32_t> pids = scan_pids("/proc");
  companion::CameraScratch scratch;
  companion::ContentBuffer out(64 << 20);
  double raw = 0, encoded = 0, processes = 0;
  for (auto _ : state) {
    raw = encoded = processes = 0;
    for (std::uint32_t pid : pids) {
      std::uint64_t cursor = 0;
      auto r = companion::build_camera("/proc", pid, true, 1ULL << 18, cursor, 0, out, scratch);
      if (r.gone || r.rle_bytes == 0) continue;
      raw += static_cast<double>(r.pages_read * 8);
      encoded += static_cast<double>(r.rle_bytes);
      processes += 1;
    }
  }
  state.counters["processes"] = processes;
  state.counters["ratio"] = encoded > 0 ? raw / encoded : 0;
}
BENCHMARK(BM_CompressionRealProcesses)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace haywire::beacon

BENCHMARK_MAIN();
