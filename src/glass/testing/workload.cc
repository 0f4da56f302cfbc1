// glass-workload: a program that writes a known set of pages at a known rate, for testing and
// measuring glass. It logs exactly which pages it wrote in each interval so a test can compare
// glass's report with the truth, and in checksum mode prints a digest of its final memory so a
// run with glass can be shown to behave exactly like one without.
//
//   glass-workload MODE [--size 64M] [--rate PAGES_PER_S] [--duration-ms N] [--interval-ms N]
//                  [--threads N] [--hot PAGES] [--seed N] [--log FILE] [--ready-fd FD] [--wait] [--hold]
//   MODE: sweep | random | hotset-move | burst | threads | fork | checksum (--writes N random page
//   writes, default 4 per page, independent of time, then prints "checksum HEX")
//
// Startup: maps one anonymous private region (never touched: the first write to each page is a
// first write), then prints "glass-workload pid=PID region=0xSTART-0xEND" to stdout (and to
// --ready-fd). --wait: then reads one line from stdin before writing. --hold: after the run,
// prints "glass-workload done" and waits for EOF on stdin before exiting (so a monitor can
// take its last scan).
// Log (--log): "interval I t_ms=T tid=TID" then one "0xSTART-0xEND" line per written range.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "haywire/base/parse.h"

namespace {

constexpr std::uint64_t kPage = 4096;

struct Options {
  std::string mode;
  std::uint64_t size = 64ull << 20;
  std::uint64_t rate = 0;  // pages/s, 0 = as fast as possible
  std::uint64_t duration_ms = 1000;
  std::uint64_t interval_ms = 100;
  std::uint64_t threads = 4;
  std::uint64_t hot = 0;  // hot-set pages, default size/16
  std::uint64_t seed = 1;
  std::uint64_t writes = 0;  // checksum mode: number of page writes, default 4 per page
  std::string log_path;
  int ready_fd = -1;
  bool wait = false;
  bool hold = false;
};

using Clock = std::chrono::steady_clock;

// Collects written pages per interval and writes them out at the end (logging during the run
// would add file writes to the write pattern being measured).
// Without --log nothing is kept: the in-memory log grows the heap (a new brk region in every
// interval at 50,000 writes/s) and writes to it, which is not the pattern being measured.
class Log {
 public:
  explicit Log(bool enabled) : enabled_(enabled) {}
  void record(std::uint64_t interval, std::uint64_t page_addr, long tid) {
    if (!enabled_) return;
    std::lock_guard lock(mutex_);
    if (interval >= intervals_.size()) intervals_.resize(interval + 1);
    intervals_[interval].insert({tid, page_addr});
  }
  void write(const std::string& path, std::uint64_t interval_ms) const {
    if (path.empty()) return;
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
      fmt::print(stderr, "glass-workload: cannot write log {}: {}\n", path, std::strerror(errno));
      return;
    }
    for (std::size_t i = 0; i < intervals_.size(); ++i) {
      long current_tid = -1;
      std::uint64_t start = 0;
      std::uint64_t end = 0;
      auto flush = [&] {
        if (end > start) fmt::print(f, "0x{:x}-0x{:x}\n", start, end);
        start = end = 0;
      };
      for (const auto& [tid, page] : intervals_[i]) {
        if (tid != current_tid) {
          flush();
          fmt::print(f, "interval {} t_ms={} tid={}\n", i, i * interval_ms, tid);
          current_tid = tid;
        }
        if (page == end) {
          end += kPage;
        } else {
          flush();
          start = page;
          end = page + kPage;
        }
      }
      flush();
    }
    std::fclose(f);
  }

 private:
  bool enabled_;
  mutable std::mutex mutex_;
  std::vector<std::set<std::pair<long, std::uint64_t>>> intervals_;
};

struct Run {
  const Options& options;
  unsigned char* base;
  Log& log;
  Clock::time_point start;

  std::uint64_t interval_now() const {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    return static_cast<std::uint64_t>(ms) / std::max<std::uint64_t>(options.interval_ms, 1);
  }
  bool finished() const { return Clock::now() - start >= std::chrono::milliseconds(options.duration_ms); }

  // Writes page `index` (within [first, first+count)) and paces to the rate.
  void write_page(std::uint64_t index, std::uint64_t value, std::uint64_t done, std::uint64_t rate) {
    unsigned char* page = base + index * kPage;
    std::uint64_t word = value * 0x9E3779B97F4A7C15ull + index;
    std::memcpy(page + (value % (kPage / 8)) * 8, &word, sizeof word);
    log.record(interval_now(), reinterpret_cast<std::uint64_t>(page), static_cast<long>(::syscall(SYS_gettid)));
    if (rate != 0) {
      auto due = start + std::chrono::microseconds(done * 1'000'000 / rate);
      std::this_thread::sleep_until(due);
    }
  }

  // Writes pages of [first, first+count) chosen by `next` until the duration ends.
  template <class Next>
  void loop(std::uint64_t rate, Next next) {
    for (std::uint64_t done = 0; !finished(); ++done) write_page(next(done), done, done + 1, rate);
  }
};

std::uint64_t checksum(const unsigned char* data, std::uint64_t size) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over 8-byte words
  for (std::uint64_t i = 0; i + 8 <= size; i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, data + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  return h;
}

int usage(std::string_view why) {
  fmt::print(stderr,
             "glass-workload: {}\nusage: glass-workload sweep|random|hotset-move|burst|threads|fork|checksum "
             "[--size 64M] [--rate PAGES/S] [--duration-ms N] [--interval-ms N] [--threads N] [--hot PAGES] "
             "[--seed N] [--writes N] [--log FILE] [--ready-fd FD] [--wait] [--hold]\n",
             why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (argc < 2) return usage("missing mode");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view { return i + 1 < argc ? std::string_view(argv[++i]) : std::string_view{}; };
    auto number = [&](std::uint64_t& out, bool size) {
      auto parsed = size ? haywire::parse_size(value()) : haywire::parse_u64(value());
      if (!parsed) return false;
      out = *parsed;
      return true;
    };
    bool ok = true;
    if (arg == "--size") ok = number(o.size, true);
    else if (arg == "--rate") ok = number(o.rate, false);
    else if (arg == "--duration-ms") ok = number(o.duration_ms, false);
    else if (arg == "--interval-ms") ok = number(o.interval_ms, false);
    else if (arg == "--threads") ok = number(o.threads, false);
    else if (arg == "--hot") ok = number(o.hot, false);
    else if (arg == "--seed") ok = number(o.seed, false);
    else if (arg == "--writes") ok = number(o.writes, false);
    else if (arg == "--log") o.log_path = std::string(value());
    else if (arg == "--ready-fd") {
      std::uint64_t fd = 0;
      ok = number(fd, false) && fd < 1024;
      o.ready_fd = static_cast<int>(fd);
    } else if (arg == "--wait") o.wait = true;
    else if (arg == "--hold") o.hold = true;
    else return usage(fmt::format("unknown option {}", arg));
    if (!ok) return usage(fmt::format("bad value for {}", arg));
  }
  static constexpr std::string_view kModes[] = {"sweep", "random", "hotset-move", "burst", "threads", "fork", "checksum"};
  if (std::find(std::begin(kModes), std::end(kModes), o.mode) == std::end(kModes))
    return usage(fmt::format("unknown mode {}", o.mode));
  o.size = (o.size + kPage - 1) / kPage * kPage;
  if (o.size == 0) return usage("--size must be positive");
  const std::uint64_t pages = o.size / kPage;
  if (o.hot == 0) o.hot = std::max<std::uint64_t>(1, pages / 16);
  o.hot = std::min(o.hot, pages);
  o.threads = std::clamp<std::uint64_t>(o.threads, 1, 256);

  void* mem = ::mmap(nullptr, o.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    fmt::print(stderr, "glass-workload: mmap {} bytes: {}\n", o.size, std::strerror(errno));
    return 1;
  }
  auto* base = static_cast<unsigned char*>(mem);
  std::string ready = fmt::format("glass-workload pid={} region=0x{:x}-0x{:x}\n", ::getpid(),
                                  reinterpret_cast<std::uint64_t>(base), reinterpret_cast<std::uint64_t>(base) + o.size);
  std::fputs(ready.c_str(), stdout);
  std::fflush(stdout);
  if (o.ready_fd >= 0) {
    (void)!::write(o.ready_fd, ready.data(), ready.size());
    ::close(o.ready_fd);
  }
  if (o.wait) {
    char line[64];
    if (std::fgets(line, sizeof line, stdin) == nullptr) return 0;
  }

  Log log(!o.log_path.empty());
  Run run{o, base, log, Clock::now()};
  std::mt19937_64 rng(o.seed);
  if (o.mode == "sweep") {
    run.loop(o.rate, [&](std::uint64_t n) { return n % pages; });
  } else if (o.mode == "checksum") {
    // A fixed number of writes (not a duration) so the result depends on nothing but --seed/--size.
    const std::uint64_t writes = o.writes != 0 ? o.writes : pages * 4;
    for (std::uint64_t n = 0; n < writes; ++n) run.write_page(rng() % pages, n, n + 1, o.rate);
  } else if (o.mode == "random") {
    run.loop(o.rate, [&](std::uint64_t) { return rng() % pages; });
  } else if (o.mode == "hotset-move") {
    // A hot set of contiguous pages that moves to the other half halfway through.
    std::uint64_t half_ms = o.duration_ms / 2;
    run.loop(o.rate, [&](std::uint64_t) {
      bool moved = Clock::now() - run.start >= std::chrono::milliseconds(half_ms);
      std::uint64_t first = moved ? pages / 2 : 0;
      return first + rng() % std::min(o.hot, pages - first);
    });
  } else if (o.mode == "burst") {
    // Quiet (one hot page) for 40% of the time, a burst across the whole region, quiet again.
    run.loop(o.rate, [&](std::uint64_t n) {
      auto t = Clock::now() - run.start;
      bool burst = t >= std::chrono::milliseconds(o.duration_ms * 2 / 5) && t < std::chrono::milliseconds(o.duration_ms * 3 / 5);
      return burst ? (n * 7919) % pages : 0;
    });
  } else if (o.mode == "threads") {
    // Each thread sweeps its own disjoint slice; the rate is per thread.
    std::uint64_t slice = std::max<std::uint64_t>(1, pages / o.threads);
    std::vector<std::thread> workers;
    for (std::uint64_t t = 0; t < o.threads && t * slice < pages; ++t) {
      workers.emplace_back([&, t] {
        std::uint64_t count = std::min(slice, pages - t * slice);
        run.loop(o.rate, [&](std::uint64_t n) { return t * slice + n % count; });
      });
    }
    for (auto& w : workers) w.join();
  } else if (o.mode == "fork") {
    // The parent writes the first half, a child the second half (same virtual addresses, its
    // own copy); both log to the same file, the child under its own tid.
    ::fflush(nullptr);
    pid_t child = ::fork();
    if (child < 0) {
      fmt::print(stderr, "glass-workload: fork: {}\n", std::strerror(errno));
      return 1;
    }
    std::uint64_t first = child == 0 ? pages / 2 : 0;
    std::uint64_t count = std::max<std::uint64_t>(1, child == 0 ? pages - pages / 2 : pages / 2);
    run.loop(o.rate, [&](std::uint64_t n) { return first + n % count; });
    if (child == 0) {
      if (!o.log_path.empty()) log.write(o.log_path + ".child", o.interval_ms);
      std::_Exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  log.write(o.log_path, o.interval_ms);
  if (o.mode == "checksum") fmt::print("checksum {:016x}\n", checksum(base, o.size));
  std::fflush(stdout);
  if (o.hold) {
    // Every write (and the log) is done: a monitor's next scan holds the run's last writes.
    std::fputs("glass-workload done\n", stdout);
    std::fflush(stdout);
    char buf[256];
    while (std::fgets(buf, sizeof buf, stdin) != nullptr) {
    }
  }
  return 0;
}
