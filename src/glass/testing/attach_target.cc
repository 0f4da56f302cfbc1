// A target for the attach tests: worker threads write memory and sleep between rounds, one
// thread blocks in read(2), and the main thread (the one injection stops) sits in a blocking
// system call or computes. Its output is deterministic, so a run with glass attached must print
// exactly what a run without it prints; the main thread checks its own call came back right.
//   glass_attach_target [--threads N] [--rounds R] [--leader sleep|read|busy] [--sleep-ms MS]
//                       [--print-env]
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kBufferWords = (1 << 20) / sizeof(std::uint64_t);

double now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::uint64_t worker(unsigned index, int rounds) {
  std::vector<std::uint64_t> buffer(kBufferWords);
  std::uint64_t sum = 0;
  for (int round = 0; round < rounds; ++round) {
    std::uint64_t x = 0x9e3779b97f4a7c15ULL * (index + 1) + static_cast<std::uint64_t>(round);
    for (auto& word : buffer) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      word = x;
    }
    for (std::size_t i = 0; i < buffer.size(); i += 511) sum = sum * 31 + buffer[i];
    timespec pause{0, 1000000};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
  }
  return sum;
}

const char* env_or_unset(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "(unset)" : value;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 2;
  int rounds = 50;
  std::string leader = "sleep";
  long sleep_ms = 300;
  bool print_env = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--threads") threads = static_cast<unsigned>(std::stoul(next()));
    else if (arg == "--rounds") rounds = std::stoi(next());
    else if (arg == "--leader") leader = next();
    else if (arg == "--sleep-ms") sleep_ms = std::stol(next());
    else if (arg == "--print-env") print_env = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  std::printf("main\n");
  if (print_env) {
    std::printf("LD_PRELOAD=%s\n", env_or_unset("LD_PRELOAD"));
    std::printf("HAYWIRE_GLASS_AGENT_FD=%s\n", env_or_unset("HAYWIRE_GLASS_AGENT_FD"));
  }
  std::fflush(stdout);

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 3;
  char reader_got = 0;
  std::thread reader([&] {
    ssize_t n;
    do {
      n = read(pipe_fds[0], &reader_got, 1);
    } while (n < 0 && errno == EINTR);
  });
  std::vector<std::uint64_t> sums(threads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] { sums[t] = worker(t, rounds); });
  }
  std::printf("ready\n");
  std::fflush(stdout);

  if (leader == "sleep") {
    // One nanosleep call: an injection that breaks restart would return early or with an error.
    timespec request{sleep_ms / 1000, (sleep_ms % 1000) * 1000000};
    const double start = now_ms();
    int rc = nanosleep(&request, nullptr);
    int err = rc == 0 ? 0 : errno;
    const double elapsed = now_ms() - start;
    if (rc == 0 && elapsed >= static_cast<double>(sleep_ms)) std::printf("leader sleep ok\n");
    else std::printf("leader sleep FAILED rc=%d errno=%d elapsed=%.1fms\n", rc, err, elapsed);
  } else if (leader == "read") {
    char line[64] = {};
    ssize_t n = read(STDIN_FILENO, line, sizeof(line) - 1);
    if (n < 0) std::printf("leader read FAILED errno=%d\n", errno);
    else std::printf("leader read ok got=%.*s\n", static_cast<int>(n), line);
  } else {
    std::uint64_t x = 1;
    for (long i = 0; i < sleep_ms * 200000; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    std::printf("leader busy ok %llx\n", static_cast<unsigned long long>(x));
  }
  for (auto& w : workers) w.join();
  char wake = 'x';
  if (write(pipe_fds[1], &wake, 1) != 1) return 4;
  reader.join();
  std::uint64_t total = 0;
  for (auto s : sums) total = total * 1000003 + s;
  std::printf("reader got=%c\nchecksum=%016llx\n", reader_got,
              static_cast<unsigned long long>(total));
  return 0;
}
