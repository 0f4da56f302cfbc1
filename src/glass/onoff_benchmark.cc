// Slowdown of a write-heavy process while `haywire glass --pid` watches it, against the same
// process unwatched in the same run (docs/PERFORMANCE.md, issue 5).
//
// A child writes as fast as it can and counts its work in shared memory. `--workload random`
// (the default) writes one 8-byte word of a random page of SIZE MiB: every page is written many
// times per 100 ms interval, the worst case for write tracking. `--workload sort` fills 512 KiB
// chunks of SIZE MiB in turn with random numbers and sorts each (std::sort), counting the
// numbers sorted: a moving hot set of ~3,500 pages per interval, each page rewritten every ~2 s
// at 256 MiB, the pattern of a sort's run formation: the ordinary case. Each round measures its
// rate of work unwatched (1.5 s), watched by
// `haywire glass --pid CHILD --interval-ms 100 --intervals N [GLASS OPTIONS]` (from 0.5 s after
// the attach to 0.5 s before the end; N = 30 by default), and unwatched again; the round's change
// is watched / mean(unwatched) - 1.
// Whole-program timings on this machine drift by +-15 % between runs; adjacent windows of one
// process do not, which is why this compares windows and reports the median round (and the mean
// and its standard error). Use --intervals 100 or more for sampled mode: the attach arms every
// page, and the sort workload takes ~2 s to write them all once.
//
// Usage: glass_onoff_benchmark [--workload random|sort] [--haywire PATH (another build's CLI)]
//                              [--size MiB] [--rounds N] [--intervals N] [-- GLASS OPTIONS...]
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void writer(std::atomic<std::uint64_t>* counter, std::size_t bytes) {
  auto* mem = static_cast<char*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) ::_exit(1);
  std::memset(mem, 1, bytes);
  const std::size_t pages = bytes / 4096;
  std::mt19937_64 rng(1);
  for (std::uint64_t n = 0;; n += 1024) {
    for (unsigned k = 0; k < 1024; ++k) mem[(rng() % pages) * 4096 + (k & 63) * 8] += 1;
    counter->store(n, std::memory_order_relaxed);
  }
}

// Sorts 512 KiB chunks of `bytes` in turn, each refilled with random numbers first; counts the
// numbers sorted.
[[noreturn]] void sorter(std::atomic<std::uint64_t>* counter, std::size_t bytes) {
  constexpr std::size_t kChunk = std::size_t{512} << 10;
  const std::size_t chunks = std::max<std::size_t>(bytes / kChunk, 1);
  auto* mem = static_cast<std::uint64_t*>(
      ::mmap(nullptr, chunks * kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) ::_exit(1);
  std::memset(mem, 1, chunks * kChunk);
  constexpr std::size_t kPerChunk = kChunk / sizeof(std::uint64_t);
  std::mt19937_64 rng(1);
  for (std::uint64_t n = 0, c = 0;; c = (c + 1) % chunks) {
    std::uint64_t* chunk = mem + c * kPerChunk;
    for (std::size_t i = 0; i < kPerChunk; ++i) chunk[i] = rng();
    std::sort(chunk, chunk + kPerChunk);
    n += kPerChunk;
    counter->store(n, std::memory_order_relaxed);
  }
}

double rate(const std::atomic<std::uint64_t>& counter, std::chrono::milliseconds window) {
  const std::uint64_t before = counter.load();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(window);
  const std::uint64_t after = counter.load();
  return static_cast<double>(after - before) / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mib = 64;
  std::string workload = "random";
  std::string cli = HAYWIRE_CLI;
  int rounds = 5;
  int intervals = 30;
  std::vector<std::string> glass_options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--workload" && i + 1 < argc && (argv[i + 1] == std::string("random") || argv[i + 1] == std::string("sort"))) {
      workload = argv[++i];
    } else if (a == "--haywire" && i + 1 < argc) {
      cli = argv[++i];
    } else if (a == "--size" && i + 1 < argc) {
      mib = std::stoul(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::stoi(argv[++i]));
    } else if (a == "--intervals" && i + 1 < argc) {
      intervals = std::max(15, std::stoi(argv[++i]));
    } else if (a == "--") {
      glass_options.assign(argv + i + 1, argv + argc);
      break;
    } else {
      std::fprintf(stderr, "usage: %s [--workload random|sort] [--haywire PATH] [--size MiB] [--rounds N] [--intervals N (>= 15)] [-- GLASS OPTIONS...]\n", argv[0]);
      return 2;
    }
  }
  auto* counter = static_cast<std::atomic<std::uint64_t>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (counter == MAP_FAILED) return 1;
  const pid_t child = ::fork();
  if (child < 0) return 1;
  if (child == 0) {
    if (workload == "sort") sorter(counter, mib << 20);
    writer(counter, mib << 20);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // memset done, rate steady

  std::vector<std::string> args{cli, "glass", "--pid", std::to_string(child), "--interval-ms", "100",
                                "--intervals", std::to_string(intervals), "--json"};
  args.insert(args.end(), glass_options.begin(), glass_options.end());
  std::vector<char*> argp;
  for (std::string& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  posix_spawn_file_actions_t quiet;
  ::posix_spawn_file_actions_init(&quiet);
  ::posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
  ::posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);

  fmt::print("glass options: {}\nworkload: {} over {} MiB\n", fmt::join(glass_options, " "),
             workload == "sort" ? "sorting 512 KiB chunks in turn" : "random 8-byte writes", mib);
  std::vector<double> changes;
  int status = 0;
  for (int r = 0; r < rounds; ++r) {
    const double off1 = rate(*counter, std::chrono::milliseconds(1500));
    pid_t glass = -1;
    if (::posix_spawn(&glass, argp[0], &quiet, nullptr, argp.data(), environ) != 0) {
      std::fprintf(stderr, "cannot start %s\n", argp[0]);
      status = 1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double on = rate(*counter, std::chrono::milliseconds(intervals * 100 - 1000));
    int glass_status = 0;
    ::waitpid(glass, &glass_status, 0);
    if (!WIFEXITED(glass_status) || WEXITSTATUS(glass_status) != 0) {
      std::fprintf(stderr, "haywire glass failed (status %d)\n", glass_status);
      status = 1;
      break;
    }
    const double off2 = rate(*counter, std::chrono::milliseconds(1500));
    const double change = on / ((off1 + off2) / 2) - 1;
    changes.push_back(change);
    fmt::print("round {}: unwatched {:.2f} M {}/s, watched {:.2f}, unwatched {:.2f}: {:+.1f} %\n", r, off1 / 1e6,
               workload == "sort" ? "numbers sorted" : "writes", on / 1e6, off2 / 1e6, change * 100);
    std::fflush(stdout);
  }
  ::posix_spawn_file_actions_destroy(&quiet);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  if (changes.empty()) return status == 0 ? 1 : status;
  double mean = 0;
  for (double c : changes) mean += c / static_cast<double>(changes.size());
  double var = 0;
  for (double c : changes) var += (c - mean) * (c - mean);
  const double se = changes.size() > 1 ? std::sqrt(var / static_cast<double>(changes.size() - 1) /
                                                   static_cast<double>(changes.size()))
                                       : 0.0;
  std::sort(changes.begin(), changes.end());
  fmt::print("median work-rate change while watched: {:+.1f} % ({} rounds; mean {:+.1f} %, s.e. {:.1f})\n",
             changes[changes.size() / 2] * 100, changes.size(), mean * 100, se * 100);
  return status;
}
