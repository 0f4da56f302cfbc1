// End-to-end tests of `haywire glass` against glass-workload (issue 5): exactness of full mode
// (launch and --pid), accuracy of sampled mode, unchanged behaviour, output formats, errors,
// forks and the detectors, all through the real command line.
//
// Every process a test starts is killed and reaped by PID when the test ends, pass or fail;
// the test process is a child subreaper so that a workload orphaned by a killed monitor is
// reparented to it and reaped too.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kPage = 4096;
const std::string kHaywire = HAYWIRE_CLI;
const std::string kWorkload = HAYWIRE_GLASS_WORKLOAD;

// ---- processes ----

// A started process with pipes to its stdin/stdout/stderr. The destructor kills and reaps it
// (and any PID registered with also_kill), whatever happened in the test.
class Proc {
 public:
  explicit Proc(const std::vector<std::string>& argv) {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  ~Proc() {
    for (pid_t p : others_) ::kill(p, SIGKILL);
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int s = 0;
      ::waitpid(pid_, &s, 0);
    }
    // Orphans come to us (subreaper) once their parent is gone; reap them, without hanging.
    for (pid_t p : others_) {
      for (int i = 0; i < 200; ++i) {
        int s = 0;
        pid_t r = ::waitpid(p, &s, WNOHANG);
        if (r == p || (r < 0 && errno == ECHILD)) break;
        std::this_thread::sleep_for(10ms);
      }
    }
    close_stdin();
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }

  pid_t pid() const { return pid_; }
  int out() const { return out_; }
  int err() const { return err_; }
  void also_kill(pid_t p) { others_.push_back(p); }
  void write_stdin(std::string_view s) { ASSERT_EQ(::write(in_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  void close_stdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Waits for the exit; nullopt on timeout (the destructor then kills it).
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!status_) {
      int s = 0;
      pid_t r = ::waitpid(pid_, &s, WNOHANG);
      if (r == pid_) {
        status_ = s;
        break;
      }
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(5ms);
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::optional<int> status_;
  std::vector<pid_t> others_;
};

int exit_code(std::optional<int> status) {
  if (!status) return -1;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
}

// Reads lines from several pipes at once (so none fills up while another is awaited).
class Pump {
 public:
  using OnLine = std::function<void(const std::string&)>;
  void add(int fd, OnLine on_line) { streams_.push_back({fd, {}, std::move(on_line), false}); }
  // Runs until `done()` is true (checked after each line) or every stream hit EOF; false on
  // timeout.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      std::vector<pollfd> fds;
      std::vector<Stream*> which;
      for (auto& s : streams_) {
        if (s.eof) continue;
        fds.push_back({s.fd, POLLIN, 0});
        which.push_back(&s);
      }
      if (fds.empty()) return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      if (::poll(fds.data(), fds.size(), static_cast<int>(std::min<long>(left, 50))) < 0 && errno != EINTR) return false;
      for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        char buf[65536];
        ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        Stream& s = *which[i];
        if (n <= 0) {
          if (!s.buffer.empty()) s.on_line(s.buffer);
          s.buffer.clear();
          s.eof = true;
          continue;
        }
        s.buffer.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = s.buffer.find('\n')) != std::string::npos) {
          std::string line = s.buffer.substr(0, nl);
          s.buffer.erase(0, nl + 1);
          s.on_line(line);
          if (done()) return true;
        }
      }
    }
    return true;
  }
  bool run_to_eof(std::chrono::milliseconds timeout) {
    return run_until([] { return false; }, timeout);
  }

 private:
  struct Stream {
    int fd;
    std::string buffer;
    OnLine on_line;
    bool eof;
  };
  std::vector<Stream> streams_;
};

// ---- what the workload and glass report ----

struct Region {
  pid_t pid = 0;
  std::uint64_t start = 0, end = 0;
};

std::optional<Region> parse_ready(const std::string& line) {
  static const std::regex re(R"(glass-workload pid=(\d+) region=0x([0-9a-f]+)-0x([0-9a-f]+))");
  std::smatch m;
  if (!std::regex_search(line, m, re)) return std::nullopt;
  return Region{static_cast<pid_t>(std::stol(m[1])), std::stoull(m[2], nullptr, 16), std::stoull(m[3], nullptr, 16)};
}

using PageSet = std::set<std::uint64_t>;  // page addresses

// The pages of a workload log; with `last_intervals`, only those of its last N intervals.
PageSet read_log(const std::string& path, std::uint64_t last_intervals = 0) {
  PageSet pages;
  std::uint64_t max_interval = 0;
  if (last_intervals != 0) {
    std::ifstream scan(path);
    std::string l;
    while (std::getline(scan, l))
      if (l.rfind("interval ", 0) == 0) max_interval = std::max<std::uint64_t>(max_interval, std::stoull(l.substr(9)));
  }
  std::ifstream in(path);
  std::string line;
  bool wanted = true;
  while (std::getline(in, line)) {
    if (line.rfind("interval ", 0) == 0) {
      wanted = last_intervals == 0 || std::stoull(line.substr(9)) + last_intervals > max_interval;
      continue;
    }
    if (!wanted) continue;
    auto dash = line.find('-');
    if (line.rfind("0x", 0) != 0 || dash == std::string::npos) continue;
    std::uint64_t s = std::stoull(line.substr(0, dash), nullptr, 16);
    std::uint64_t e = std::stoull(line.substr(dash + 1), nullptr, 16);
    for (std::uint64_t p = s; p < e; p += kPage) pages.insert(p);
  }
  return pages;
}

PageSet written_in(const std::vector<json>& intervals, const Region& region) {
  PageSet pages;
  for (const auto& j : intervals) {
    for (const auto& r : j.at("written")) {
      std::uint64_t s = std::stoull(r.at(0).get<std::string>(), nullptr, 16);
      std::uint64_t e = std::stoull(r.at(1).get<std::string>(), nullptr, 16);
      for (std::uint64_t p = std::max(s, region.start); p < std::min(e, region.end); p += kPage) pages.insert(p);
    }
  }
  return pages;
}

std::string describe_difference(const PageSet& got, const PageSet& want) {
  std::size_t missing = 0, extra = 0;
  std::string example;
  for (auto p : want)
    if (!got.contains(p) && missing++ == 0) example += fmt::format(" first missing 0x{:x}", p);
  for (auto p : got)
    if (!want.contains(p) && extra++ == 0) example += fmt::format(" first extra 0x{:x}", p);
  return fmt::format("glass {} pages, log {} pages: {} missing, {} extra;{}", got.size(), want.size(), missing, extra,
                     example);
}

std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("glass-cli-test-{}", ::getpid());
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

class GlassCli : public ::testing::Test {
 protected:
  // The workload is built without sanitizers (tests/glass/CMakeLists.txt) in every build.
  static void SetUpTestSuite() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::temp_directory_path() / fmt::format("glass-cli-test-{}", ::getpid()), ec);
  }
};

// What one run of the tool gave.
struct GlassRun {
  std::vector<json> intervals;
  std::vector<std::string> target_lines;  // the workload's own stdout (launch path)
  std::string err;
  std::optional<Region> region;
  int code = -1;
  std::size_t done_at = 0;  // intervals reported before the workload said it was done (launch)
};

// `haywire glass OPTIONS --json -- glass-workload ARGS --hold`: the workload's stdin is ours, so
// it stays alive after its run until two more intervals were reported, then gets EOF and exits.
GlassRun launch_held(const std::vector<std::string>& glass_options, const std::vector<std::string>& workload_args,
                int intervals_after_done = 2) {
  std::vector<std::string> argv{kHaywire, "glass", "--json"};
  argv.insert(argv.end(), glass_options.begin(), glass_options.end());
  argv.push_back("--");
  argv.push_back(kWorkload);
  argv.insert(argv.end(), workload_args.begin(), workload_args.end());
  argv.push_back("--hold");
  GlassRun run;
  Proc glass(argv);
  int after_done = -1;
  Pump pump;
  pump.add(glass.out(), [&](const std::string& line) {
    if (!line.empty() && line[0] == '{') {
      run.intervals.push_back(json::parse(line));
      if (after_done >= 0 && ++after_done == intervals_after_done) glass.close_stdin();
      return;
    }
    run.target_lines.push_back(line);
    if (auto r = parse_ready(line)) {
      run.region = r;
      glass.also_kill(r->pid);
    }
    if (line == "glass-workload done") {
      after_done = 0;
      run.done_at = run.intervals.size();
    }
  });
  pump.add(glass.err(), [&](const std::string& line) { run.err += line + "\n"; });
  EXPECT_TRUE(pump.run_to_eof(45s)) << "glass did not finish after " << run.intervals.size() << " intervals (workload "
                                    << (after_done >= 0 ? "done" : "not done") << ", last line '"
                                    << (run.target_lines.empty() ? "" : run.target_lines.back()) << "'); stderr:\n"
                                    << run.err;
  run.code = exit_code(glass.wait(10s));
  return run;
}

// Starts `glass-workload ARGS --wait --hold`, attaches `haywire glass --pid OPTIONS --json` before
// it writes, lets it run, waits a few intervals after it is done, detaches with SIGINT.
// `while_attached` runs after the workload finished, before the detach.
GlassRun attach_held(const std::vector<std::string>& glass_options, const std::vector<std::string>& workload_args,
                const std::function<void(pid_t)>& while_attached = {}, std::vector<std::string>* workload_out = nullptr) {
  std::vector<std::string> wargv{kWorkload};
  wargv.insert(wargv.end(), workload_args.begin(), workload_args.end());
  wargv.push_back("--wait");
  wargv.push_back("--hold");
  GlassRun run;
  Proc workload(wargv);
  bool done = false;
  std::vector<std::string> wlines;
  Pump wpump;
  wpump.add(workload.out(), [&](const std::string& line) {
    wlines.push_back(line);
    if (auto r = parse_ready(line)) run.region = r;
    if (line == "glass-workload done") done = true;
  });
  std::string werr;
  wpump.add(workload.err(), [&](const std::string& line) { werr += line + "\n"; });
  EXPECT_TRUE(wpump.run_until([&] { return run.region.has_value(); }, 10s)) << werr;
  if (!run.region) return run;

  std::vector<std::string> argv{kHaywire, "glass", "--pid", std::to_string(workload.pid()), "--json"};
  argv.insert(argv.end(), glass_options.begin(), glass_options.end());
  Proc glass(argv);
  bool attached = false;
  Pump gpump;
  gpump.add(glass.out(), [&](const std::string& line) {
    if (!line.empty() && line[0] == '{') run.intervals.push_back(json::parse(line));
  });
  gpump.add(glass.err(), [&](const std::string& line) {
    run.err += line + "\n";
    if (line.find("glass: attached") != std::string::npos) attached = true;
  });
  EXPECT_TRUE(gpump.run_until([&] { return attached; }, 15s)) << run.err;
  if (!attached) return run;
  workload.write_stdin("go\n");
  auto deadline = Clock::now() + 30s;
  while (!done && Clock::now() < deadline) {
    wpump.run_until([&] { return done; }, 20ms);
    gpump.run_until([] { return false; }, 20ms);
  }
  EXPECT_TRUE(done) << "workload never finished; its stderr:\n" << werr;
  // A few more intervals (the monitor scans every interval) so the last writes are reported.
  auto settle = Clock::now() + 400ms;
  while (Clock::now() < settle) gpump.run_until([] { return false; }, 20ms);
  if (while_attached) while_attached(workload.pid());
  glass.signal(SIGINT);
  EXPECT_TRUE(gpump.run_to_eof(15s)) << run.err;
  run.code = exit_code(glass.wait(10s));
  workload.close_stdin();
  wpump.run_to_eof(10s);
  EXPECT_EQ(exit_code(workload.wait(10s)), 0) << werr;
  if (workload_out) *workload_out = wlines;
  return run;
}

// Small enough that the ASan build keeps up; the sweep does not wrap, so the written set is a
// real subset of the region.
const std::vector<std::pair<std::string, std::vector<std::string>>> kExactWorkloads = {
    {"sweep", {"sweep", "--size", "8M", "--rate", "1000", "--duration-ms", "1000"}},
    {"random", {"random", "--size", "8M", "--rate", "1000", "--duration-ms", "1000"}},
    {"hotset-move", {"hotset-move", "--size", "8M", "--rate", "2000", "--duration-ms", "1000"}},
    {"burst", {"burst", "--size", "8M", "--rate", "2000", "--duration-ms", "1000"}},
    {"threads", {"threads", "--size", "8M", "--threads", "4", "--rate", "300", "--duration-ms", "1000"}},
};

void expect_exact(const GlassRun& run, const std::string& log, const std::string& what) {
  ASSERT_TRUE(run.region) << what << ": no ready line; stderr:\n" << run.err;
  ASSERT_EQ(run.code, 0) << what << ": stderr:\n" << run.err;
  ASSERT_GE(run.intervals.size(), 3u) << what;
  for (const auto& j : run.intervals) ASSERT_EQ(j.at("mode"), "full") << what;
  PageSet want = read_log(log);
  ASSERT_GT(want.size(), 100u) << what << ": the workload logged too little";
  PageSet got = written_in(run.intervals, *run.region);
  EXPECT_TRUE(got == want) << what << ": " << describe_difference(got, want);
}

TEST_F(GlassCli, FullModeIsExactAtLaunch) {
  for (const auto& [name, args] : kExactWorkloads) {
    std::string log = temp_path(name + ".log");
    auto a = args;
    a.insert(a.end(), {"--log", log});
    GlassRun run = launch_held({"--full", "--interval-ms", "50"}, a);
    expect_exact(run, log, "launch " + name);
  }
}

TEST_F(GlassCli, FullModeIsExactThroughPid) {
  for (const auto& [name, args] : kExactWorkloads) {
    std::string log = temp_path(name + ".log");
    auto a = args;
    a.insert(a.end(), {"--log", log});
    GlassRun run = attach_held({"--full", "--interval-ms", "50"}, a);
    expect_exact(run, log, "--pid " + name);
  }
}

// Sampled mode with a calibration every other interval: the telemetry's F1 (calibration of the
// sampled plan against the full interval) on workloads with locality. Uniformly random writes
// are excluded by design (docs/glass.md: no estimator beats chance on them). At 64 MiB the grid
// (order 8) has one page per cell, so a cell is hot exactly when its page was written: the hot
// set is small enough (512 pages, 2000 random writes per interval) that nearly all of it is
// written each interval; with the default 1024 pages, 14 % of it stays unwritten at random
// each interval, which no sampled estimate can know (F1 0.87-0.91, docs/glass.md). The rates
// are high so that the workload's writes dominate the scattered ones of its runtime.
TEST_F(GlassCli, SampledModeMeetsAccuracyTarget) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> workloads = {
      {"sweep", {"sweep", "--size", "64M", "--rate", "50000", "--duration-ms", "2500"}},
      {"hotset-move", {"hotset-move", "--size", "64M", "--hot", "512", "--rate", "20000", "--duration-ms", "2500"}},
      {"threads", {"threads", "--size", "64M", "--threads", "4", "--rate", "12500", "--duration-ms", "2500"}},
  };
  for (const auto& [name, args] : workloads) {
    GlassRun run = launch_held({"--calibrate-every", "2", "--fixed-rate", "--interval-ms", "100"}, args);
    ASSERT_EQ(run.code, 0) << name << ": " << run.err;
    std::vector<double> f1;
    int calibrations = 0;
    for (std::size_t i = 0; i < run.intervals.size(); ++i) {
      const json& j = run.intervals[i];
      EXPECT_EQ(j.at("mode"), "sampled");
      EXPECT_EQ(j.at("telemetry").at("mode"), "sampled");
      if (!j.at("calibration").get<bool>()) continue;
      ++calibrations;
      // A calibration interval reports its own F1. Only those while the workload writes its
      // pattern count: start-up, and the end (threads exiting, the log written out, the heap
      // freed), write a few scattered pages.
      ASSERT_FALSE(j.at("telemetry").at("reconstruction_f1").is_null()) << name << ": " << j.dump();
      if (j.at("written_pages").get<std::uint64_t>() >= 200 && i + 2 <= run.done_at)
        f1.push_back(j.at("telemetry").at("reconstruction_f1").get<double>());
    }
    ASSERT_GE(calibrations, 5) << name;
    ASSERT_GE(f1.size(), 5u) << name;
    // The target (F1 >= 0.9) is on the mean, as docs/glass.md reports it; single intervals dip
    // (to 0.76 seen, on a loaded machine with the sanitizer build's slower monitor, whose
    // intervals then vary in length), so the minimum only has to stay clear of a breakage.
    double mean = 0.0;
    for (double v : f1) mean += v / static_cast<double>(f1.size());
    double worst = *std::min_element(f1.begin(), f1.end());
    EXPECT_GE(mean, 0.9) << name << ": F1 of the calibrations " << json(f1).dump();
    EXPECT_GE(worst, 0.7) << name << ": F1 of the calibrations " << json(f1).dump();
  }
}

// Sampled mode pauses (tracks in full) while sampling saves the target nothing: a sweep that
// does not wrap writes each page once, so every write it makes in sampled mode faults anyway.
// Paused intervals arm every page and report only what the workload wrote. A hot set written
// again every interval keeps sampling (outside the plan its rewrites cost no fault), and so
// does --always-sample.
TEST_F(GlassCli, SamplingPausesWhereItSavesNothing) {
  const std::vector<std::string> sweep = {"sweep", "--size", "64M", "--rate", "4000", "--duration-ms", "3500"};
  std::string log = temp_path("pause-sweep.log");
  auto logged = sweep;
  logged.insert(logged.end(), {"--log", log});
  GlassRun run = attach_held({"--interval-ms", "100"}, logged);
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_TRUE(run.region) << run.err;
  std::vector<json> paused;
  for (const json& j : run.intervals) {
    EXPECT_EQ(j.at("mode"), "sampled");
    if (!j.at("sampling_paused").get<bool>()) continue;
    paused.push_back(j);
    EXPECT_EQ(j.at("armed_pages"), j.at("tracked_pages")) << j.dump().substr(0, 400);
    EXPECT_EQ(j.at("telemetry").at("sampling_rate").get<double>(), 1.0);
  }
  // Attached before the sweep starts, every page is armed, so the sweep faults on each write
  // whether sampled or not, and sampling pauses after five sampled intervals. (Launched, the
  // region appears after the start and only plans and calibration windows arm it, a part at a
  // time: sampling spares the sweep most of its faults then, and goes on.)
  ASSERT_GE(paused.size(), 5u) << "of " << run.intervals.size() << " intervals";
  PageSet want = read_log(log);
  PageSet got = written_in(paused, *run.region);
  ASSERT_GT(got.size(), 500u) << "the paused intervals saw too little of the sweep";
  for (std::uint64_t page : got) ASSERT_TRUE(want.count(page)) << fmt::format("{:#x} reported, not written", page);

  const std::vector<std::string> hot = {"hotset-move", "--size", "64M", "--hot", "512", "--rate", "20000",
                                        "--duration-ms", "2500"};
  for (const auto& [options, args] : std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"--interval-ms", "100"}, hot}, {{"--interval-ms", "100", "--always-sample"}, sweep}}) {
    GlassRun kept = launch_held(options, args);
    ASSERT_EQ(kept.code, 0) << kept.err;
    ASSERT_GE(kept.intervals.size(), 15u);
    for (const json& j : kept.intervals)
      EXPECT_FALSE(j.at("sampling_paused").get<bool>()) << args[0] << " " << json(options).dump() << ": interval "
                                                        << j.at("interval");
  }
}

// A process that rewrites its pages every second (a sweep of 4,096 pages at 4,000 a second,
// attached before it starts): its first pass writes only pages the attach armed, so sampling
// saves nothing and pauses, as for the single pass above. Paused, glass sees the sweep come
// back to pages it wrote a second before, which sampling would have left unarmed, so sampling
// resumes; it then stays on (the rewrites of pages the pause had armed count as saved) and the
// sweep faults on a fraction of its writes.
TEST_F(GlassCli, SamplingResumesForAProcessThatRewritesItsPages) {
  constexpr double kPagesPerInterval = 400;
  GlassRun run = attach_held({"--interval-ms", "100"}, {"sweep", "--size", "16M", "--rate", "4000", "--duration-ms", "6000"});
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_GE(run.intervals.size(), 45u) << run.err;
  std::string pattern;
  for (const json& j : run.intervals) pattern += j.at("sampling_paused").get<bool>() ? 'P' : '.';
  const std::size_t first_paused = pattern.find('P');
  ASSERT_NE(first_paused, std::string::npos) << pattern;
  const std::size_t resumed = pattern.find('.', first_paused);
  ASSERT_NE(resumed, std::string::npos) << "never resumed: " << pattern;
  // Once back, sampled to the end of the sweep (the last few intervals are idle).
  const std::size_t end = run.intervals.size() - 5;
  ASSERT_LT(resumed + 10, end) << pattern;
  EXPECT_EQ(pattern.substr(resumed, end - resumed).find('P'), std::string::npos) << pattern;
  double seen = 0;
  double intervals = 0;
  for (std::size_t i = resumed + 10; i < end; ++i) {
    const json& j = run.intervals[i];
    if (j.at("calibration").get<bool>()) continue;
    seen += j.at("written_pages").get<double>();
    intervals += 1;
  }
  ASSERT_GT(intervals, 5) << pattern;
  EXPECT_LT(seen / intervals, 0.5 * kPagesPerInterval) << pattern;
}

// With --fewer-faults sampled mode costs the target faults on its plan only: after an
// interval that armed everything (the start) or a calibration window every other page is disarmed, and
// a plan is held for a while, so a sweep that writes each page once faults on about the plan's
// share of its writes. It pauses (tracks in full) while sampling saves nothing (the burst workload's quiet
// phases write one page) and resumes when it would save again (the burst). Paused intervals
// arm every page and report only what the workload wrote. --always-sample never pauses.
TEST_F(GlassCli, FewerFaultsArmsOnlyThePlanAndPausesWhenIdle) {
  const std::vector<std::string> sweep = {"sweep", "--size", "64M", "--rate", "4000", "--duration-ms", "3500"};
  GlassRun swept = launch_held({"--interval-ms", "100", "--fewer-faults"}, sweep);
  ASSERT_EQ(swept.code, 0) << swept.err;
  double seen = 0.0;
  double sampled = 0.0;
  double sampled_seconds = 0.0;
  double calibrations = 0.0;
  double f1_sum = 0.0;
  const std::size_t end = swept.done_at != 0 ? swept.done_at : swept.intervals.size();
  for (std::size_t i = 2; i + 1 < end; ++i) {
    const json& j = swept.intervals[i];
    EXPECT_FALSE(j.at("sampling_paused").get<bool>()) << "sweep: interval " << i;
    const auto written = j.at("written_pages").get<double>();
    if (j.at("calibration").get<bool>()) {
      calibrations += 1.0;
      // Reconstructed from the plan alone, as accurate as the accuracy test asks.
      const json& f1 = j.at("telemetry").at("reconstruction_f1");
      ASSERT_FALSE(f1.is_null()) << j.dump().substr(0, 400);
      EXPECT_GE(f1.get<double>(), 0.7) << "calibration " << i;
      f1_sum += f1.get<double>();
    } else if (i > 11) {  // after the first calibration (9) and the interval after it
      seen += written;
      sampled += 1.0;
      sampled_seconds += j.at("telemetry").at("interval_ms").get<double>() / 1e3;
    }
  }
  ASSERT_GE(calibrations, 1.0);
  ASSERT_GE(sampled, 10.0);
  EXPECT_GE(f1_sum / calibrations, 0.9);
  // The sweep writes 4,000 pages/s, ~400 per interval; the plan arms 10 % (the rate may rise
  // to 50 %), and after a calibration its window is disarmed too.
  const double writes = 4000.0 * sampled_seconds;
  EXPECT_LT(seen, 0.6 * writes) << "sampled intervals see (so the target faults on) " << seen / sampled
                                << " pages per interval of " << writes / sampled << " written";

  const std::vector<std::string> burst = {"burst", "--size", "64M", "--rate", "20000", "--duration-ms", "6000"};
  std::string log = temp_path("pause-burst.log");
  auto logged = burst;
  logged.insert(logged.end(), {"--log", log});
  GlassRun run = launch_held({"--interval-ms", "100", "--fewer-faults"}, logged);
  ASSERT_EQ(run.code, 0) << run.err;
  ASSERT_TRUE(run.region) << run.err;
  std::vector<json> paused;
  std::vector<bool> pattern;
  for (const json& j : run.intervals) {
    EXPECT_EQ(j.at("mode"), "sampled");
    pattern.push_back(j.at("sampling_paused").get<bool>());
    if (!pattern.back()) continue;
    paused.push_back(j);
    EXPECT_EQ(j.at("armed_pages"), j.at("tracked_pages")) << j.dump().substr(0, 400);
    EXPECT_EQ(j.at("telemetry").at("sampling_rate").get<double>(), 1.0);
  }
  // Quiet for 2.4 s (24 intervals), the burst for 1.2 s, quiet again: paused in the first
  // quiet phase, sampling again in the burst, paused again after it.
  const std::size_t n = pattern.size();
  ASSERT_GE(n, 50u);
  auto any = [&](std::size_t from, std::size_t to, bool value) {
    for (std::size_t i = from; i < std::min(to, n); ++i)
      if (pattern[i] == value) return true;
    return false;
  };
  EXPECT_TRUE(any(5, 24, true)) << json(pattern).dump();
  EXPECT_TRUE(any(26, 37, false)) << json(pattern).dump();
  EXPECT_TRUE(any(42, n, true)) << json(pattern).dump();
  PageSet want = read_log(log);
  PageSet got = written_in(paused, *run.region);
  ASSERT_GT(got.size(), 0u);
  for (std::uint64_t page : got) ASSERT_TRUE(want.count(page)) << fmt::format("{:#x} reported, not written", page);

  GlassRun kept = launch_held({"--interval-ms", "100", "--fewer-faults", "--always-sample"}, burst);
  ASSERT_EQ(kept.code, 0) << kept.err;
  ASSERT_GE(kept.intervals.size(), 50u);
  for (const json& j : kept.intervals)
    EXPECT_FALSE(j.at("sampling_paused").get<bool>()) << "--always-sample: interval " << j.at("interval");
}

// Per-thread attribution (the thread sampler) on a multithreaded target, launched and by --pid:
// four threads each sweep their own 512 pages about twice per interval, so the sampler's
// carved pages, spread over what was written, are written again while carved and every thread
// shows up in the telemetry.
TEST_F(GlassCli, ThreadSamplingSeesEveryWritingThread) {
  const std::vector<std::string> args = {"threads", "--size", "8M", "--threads", "4", "--rate", "12500",
                                         "--duration-ms", "2000"};
  for (bool attach : {false, true}) {
    const std::string how = attach ? "--pid" : "launch";
    GlassRun run = attach ? attach_held({"--interval-ms", "100"}, args) : launch_held({"--interval-ms", "100"}, args);
    ASSERT_EQ(run.code, 0) << how << ": " << run.err;
    ASSERT_GE(run.intervals.size(), 8u) << how;
    std::vector<unsigned> threads;
    for (const json& j : run.intervals) threads.push_back(j.at("telemetry").at("active_threads").get<unsigned>());
    // The first intervals fill the sampler (8 pages per interval); the last ones may see the
    // threads stop. In between most intervals must see all four.
    const std::size_t end = run.done_at != 0 ? run.done_at : threads.size();
    std::size_t all_four = 0;
    std::size_t middle = 0;
    for (std::size_t i = 3; i + 1 < end; ++i, ++middle) all_four += threads[i] == 4;
    EXPECT_EQ(*std::max_element(threads.begin(), threads.end()), 4u) << how << ": " << json(threads).dump();
    EXPECT_GE(all_four * 2, middle) << how << ": active threads per interval " << json(threads).dump();
  }
}

std::string checksum_of(const std::vector<std::string>& lines) {
  for (const auto& l : lines)
    if (l.rfind("checksum ", 0) == 0) return l;
  return {};
}

bool has_uffd_fd(pid_t pid) {
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid))) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string() == "anon_inode:[userfaultfd]") return true;
  }
  return false;
}

// VmFlags lines with `uw` (registered for userfaultfd write-protect).
int uw_mappings(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps", pid));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmFlags:", 0) != 0) continue;
    std::istringstream words(line.substr(8));
    std::string w;
    while (words >> w)
      if (w == "uw") ++n;
  }
  return n;
}

TEST_F(GlassCli, ChecksumUnchangedAndNothingLeftAfterDetach) {
  const std::vector<std::string> args{"checksum", "--size", "4M", "--seed", "7", "--rate", "20000"};
  // Without glass.
  std::vector<std::string> plain_lines;
  {
    std::vector<std::string> argv{kWorkload};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc plain(argv);
    plain.close_stdin();
    Pump pump;
    pump.add(plain.out(), [&](const std::string& l) { plain_lines.push_back(l); });
    pump.add(plain.err(), [](const std::string&) {});
    ASSERT_TRUE(pump.run_to_eof(30s));
    ASSERT_EQ(exit_code(plain.wait(10s)), 0);
  }
  const std::string expected = checksum_of(plain_lines);
  ASSERT_FALSE(expected.empty());

  // Launched by glass (sampled, the default), and with --full.
  for (const std::vector<std::string>& mode : {std::vector<std::string>{}, std::vector<std::string>{"--full"}}) {
    GlassRun run = launch_held(mode, args);
    EXPECT_EQ(run.code, 0) << run.err;
    EXPECT_EQ(checksum_of(run.target_lines), expected) << run.err;
  }

  // Attached with --pid; while attached the mappings are registered (so the checks below can
  // fail), after the detach nothing is left in the target.
  int uw_while_attached = -1;
  std::vector<std::string> wout;
  GlassRun run = attach_held({"--interval-ms", "50"}, args, [&](pid_t pid) { uw_while_attached = uw_mappings(pid); }, &wout);
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(checksum_of(wout), expected);
  EXPECT_GT(uw_while_attached, 0);

  // And the same check after detach, on a workload kept alive past it.
  Proc workload({kWorkload, "sweep", "--size", "4M", "--rate", "2000", "--duration-ms", "20000"});
  Pump wpump;
  std::optional<Region> region;
  wpump.add(workload.out(), [&](const std::string& l) {
    if (auto r = parse_ready(l)) region = r;
  });
  ASSERT_TRUE(wpump.run_until([&] { return region.has_value(); }, 10s));
  Proc glass({kHaywire, "glass", "--pid", std::to_string(workload.pid()), "--json", "--interval-ms", "50"});
  Pump gpump;
  std::string err;
  int seen = 0;
  gpump.add(glass.out(), [&](const std::string& l) { seen += !l.empty() && l[0] == '{'; });
  gpump.add(glass.err(), [&](const std::string& l) { err += l + "\n"; });
  ASSERT_TRUE(gpump.run_until([&] { return seen >= 3; }, 20s)) << err;
  EXPECT_GT(uw_mappings(workload.pid()), 0);
  glass.signal(SIGINT);
  ASSERT_TRUE(gpump.run_to_eof(15s));
  EXPECT_EQ(exit_code(glass.wait(10s)), 0) << err;
  EXPECT_FALSE(has_uffd_fd(workload.pid()));
  EXPECT_EQ(uw_mappings(workload.pid()), 0);
  EXPECT_FALSE(workload.wait(0ms).has_value()) << "the target died";
}

// A launched program goes with the monitor when something stops the monitor (SIGTERM from
// `timeout` or a supervisor, SIGHUP from a closed terminal), and stays when the user only
// detaches (SIGINT to the monitor alone; the terminal's Ctrl-C reaches the whole group).
TEST_F(GlassCli, LaunchedTargetStopsWithTheMonitorButOutlivesADetach) {
  for (int sig : {SIGTERM, SIGHUP, SIGINT}) {
    SCOPED_TRACE(::sigabbrev_np(sig));
    Proc glass({kHaywire, "glass", "--json", "--interval-ms", "50", "--", kWorkload, "sweep", "--size", "4M", "--rate",
                "2000", "--duration-ms", "60000"});
    std::optional<Region> region;
    std::string err;
    int seen = 0;
    Pump pump;
    pump.add(glass.out(), [&](const std::string& l) {
      if (!l.empty() && l[0] == '{') {
        ++seen;
      } else if (auto r = parse_ready(l)) {
        region = r;
        glass.also_kill(r->pid);
      }
    });
    pump.add(glass.err(), [&](const std::string& l) { err += l + "\n"; });
    ASSERT_TRUE(pump.run_until([&] { return region.has_value() && seen >= 3; }, 20s)) << err;
    glass.signal(sig);
    if (sig == SIGINT) {
      // The target still holds the monitor's stdout: no EOF, wait for the monitor instead.
      const std::string kept = fmt::format("pid {} keeps running untracked", region->pid);
      ASSERT_TRUE(pump.run_until([&] { return err.find(kept) != std::string::npos; }, 20s)) << err;
      EXPECT_EQ(exit_code(glass.wait(10s)), 0) << err;
      EXPECT_EQ(::kill(region->pid, 0), 0) << "the detached target is gone";
    } else {
      ASSERT_TRUE(pump.run_to_eof(20s)) << err;
      EXPECT_EQ(exit_code(glass.wait(10s)), 0) << err;
      EXPECT_NE(err.find(fmt::format("passed SIG{} on to pid {}", ::sigabbrev_np(sig), region->pid)), std::string::npos)
          << err;
      // Reaped by the monitor, not left to us (the subreaper) as a running orphan.
      EXPECT_EQ(::kill(region->pid, 0), -1);
      EXPECT_EQ(errno, ESRCH);
    }
  }
}

bool is_hex_page(const json& v) {
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  if (s.rfind("0x", 0) != 0 || s.size() < 3) return false;
  return std::stoull(s, nullptr, 16) % kPage == 0;
}

TEST_F(GlassCli, OnceJsonHasTheSpecFields) {
  Proc workload({kWorkload, "sweep", "--size", "16M", "--rate", "2000", "--duration-ms", "20000"});
  Pump wpump;
  std::optional<Region> region;
  wpump.add(workload.out(), [&](const std::string& l) {
    if (auto r = parse_ready(l)) region = r;
  });
  ASSERT_TRUE(wpump.run_until([&] { return region.has_value(); }, 10s));
  for (const char* mode : {"full", "sampled"}) {
    std::vector<std::string> argv{kHaywire, "glass", "--pid", std::to_string(workload.pid()), "--once", "--json",
                                  "--interval-ms", "200"};
    if (std::string(mode) == "full") argv.push_back("--full");
    Proc glass(argv);
    std::vector<std::string> out;
    std::string err;
    Pump pump;
    pump.add(glass.out(), [&](const std::string& l) { out.push_back(l); });
    pump.add(glass.err(), [&](const std::string& l) { err += l + "\n"; });
    ASSERT_TRUE(pump.run_to_eof(20s));
    ASSERT_EQ(exit_code(glass.wait(10s)), 0) << err;
    ASSERT_EQ(out.size(), 1u) << err;
    json j = json::parse(out[0]);
    EXPECT_EQ(j.at("interval_ms"), 200);
    EXPECT_EQ(j.at("mode"), mode);
    std::uint64_t pages = 0;
    for (const auto& r : j.at("written")) {
      ASSERT_EQ(r.size(), 2u);
      ASSERT_TRUE(is_hex_page(r[0]) && is_hex_page(r[1])) << r.dump();
      auto s = std::stoull(r[0].get<std::string>(), nullptr, 16), e = std::stoull(r[1].get<std::string>(), nullptr, 16);
      EXPECT_LT(s, e);
      pages += (e - s) / kPage;
    }
    EXPECT_EQ(j.at("written_pages").get<std::uint64_t>(), pages);
    // 2000 pages/s for 200 ms: about 400 in the region (full mode sees them all).
    if (std::string(mode) == "full") {
      PageSet in_region = written_in({j}, *region);
      EXPECT_GT(in_region.size(), 200u);
      EXPECT_LT(in_region.size(), 800u);
    }
    const json& t = j.at("telemetry");
    for (const char* key : {"fault_rate", "pages_written_per_s", "active_threads", "working_set_pages", "sampling_rate",
                            "mode", "reconstruction_f1", "reconstruction_error", "hilbert_order",
                            "memory_avalanche_detected", "phase_transition_detected", "events", "interval_ms"}) {
      EXPECT_TRUE(t.contains(key)) << key << " missing in " << t.dump();
    }
    EXPECT_EQ(t.at("mode"), mode);
    EXPECT_GT(t.at("fault_rate").get<double>(), 0.0);
    EXPECT_NEAR(t.at("interval_ms").get<double>(), 200.0, 100.0);
    if (std::string(mode) == "full") {
      EXPECT_EQ(t.at("sampling_rate").get<double>(), 1.0);
    } else {
      EXPECT_LT(t.at("sampling_rate").get<double>(), 1.0);
    }
  }
}

bool valid_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::string sig("\x89PNG\r\n\x1a\n", 8);
  return data.size() > 8 + 25 + 12 && data.compare(0, 8, sig) == 0 && data.compare(12, 4, "IHDR") == 0 &&
         data.compare(data.size() - 8, 4, "IEND") == 0;
}

TEST_F(GlassCli, PngAndRecord) {
  std::string png = temp_path("heat.png");
  std::string dir = temp_path("record");
  GlassRun run = launch_held({"--png", png, "--record", dir, "--interval-ms", "100"},
                        {"sweep", "--size", "8M", "--rate", "2000", "--duration-ms", "600"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(valid_png(png));
  std::ifstream telemetry(dir + "/telemetry.jsonl");
  std::string line;
  std::vector<json> records;
  while (std::getline(telemetry, line)) records.push_back(json::parse(line));
  // One record and one frame per interval printed (the last, partial interval may be
  // recorded after the output we saw).
  ASSERT_GE(records.size(), run.intervals.size());
  ASSERT_GE(records.size(), 4u);
  for (const auto& r : records) {
    auto frame = fmt::format("{}/frame-{:06d}.png", dir, r.at("interval").get<std::uint64_t>());
    EXPECT_TRUE(valid_png(frame)) << frame;
    EXPECT_TRUE(r.contains("telemetry"));
  }
}

TEST_F(GlassCli, Errors) {
  // A process that surely does not exist: one we started and reaped.
  pid_t gone = 0;
  {
    Proc p({"/bin/true"});
    gone = p.pid();
    ASSERT_TRUE(p.wait(10s).has_value());
  }
  auto run_glass = [](const std::vector<std::string>& args, std::string& err) {
    std::vector<std::string> argv{kHaywire, "glass"};
    argv.insert(argv.end(), args.begin(), args.end());
    Proc glass(argv);
    Pump pump;
    pump.add(glass.out(), [](const std::string&) {});
    pump.add(glass.err(), [&](const std::string& l) { err += l + "\n"; });
    pump.run_to_eof(20s);
    return exit_code(glass.wait(10s));
  };
  std::string err;
  EXPECT_EQ(run_glass({"--pid", std::to_string(gone), "--once", "--json"}, err), 1) << err;
  EXPECT_NE(err.find(std::to_string(gone)), std::string::npos) << err;
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{}, {"--pid", "1", "--", "/bin/true"}, {"--interval-ms", "5", "--", "/bin/true"},
        {"--rate", "0.9", "--", "/bin/true"}, {"--order", "13", "--", "/bin/true"}, {"--no-such-option"},
        {"--once", "--", "/bin/true"}, {"--calibration-window", "0", "--", "/bin/true"},
        {"--calibration-window", "1.5", "--", "/bin/true"}}) {
    err.clear();
    EXPECT_EQ(run_glass(bad, err), 2) << json(bad).dump() << ": " << err;
  }
}

// glass-workload fork: the parent writes the first half of the region, its child the second
// half (same virtual addresses, the child's own copy). Without --follow-forks only the
// parent's half is reported; with it, the child's writes are reported too.
TEST_F(GlassCli, FollowForks) {
  for (bool follow : {false, true}) {
    std::string log = temp_path(fmt::format("fork-{}.log", follow));
    std::vector<std::string> options{"--full", "--interval-ms", "50"};
    if (follow) options.push_back("--follow-forks");
    GlassRun run = launch_held(options, {"fork", "--size", "8M", "--rate", "1000", "--duration-ms", "1000", "--log", log});
    ASSERT_TRUE(run.region) << run.err;
    ASSERT_EQ(run.code, 0) << run.err;
    PageSet parent = read_log(log);
    PageSet child = read_log(log + ".child");
    ASSERT_GT(parent.size(), 100u);
    ASSERT_GT(child.size(), 100u);
    PageSet got = written_in(run.intervals, *run.region);
    std::size_t parent_seen = 0, child_seen = 0, neither = 0;
    for (auto p : got) {
      if (parent.contains(p)) ++parent_seen;
      if (child.contains(p)) ++child_seen;
      if (!parent.contains(p) && !child.contains(p)) ++neither;
    }
    std::string what = fmt::format("follow={}: parent {}/{} child {}/{} neither {}", follow, parent_seen, parent.size(),
                                   child_seen, child.size(), neither);
    for (auto p : parent)
      if (!got.contains(p)) what += fmt::format("; parent page {} missing", (p - run.region->start) / kPage);
    // Known race (see the report of issue 5): about one run in four, the parent's page written
    // at the instant its new region is first registered (the first scan) is not reported.
    EXPECT_GE(parent_seen + 1, parent.size()) << what;
    EXPECT_EQ(neither, 0u) << what;
    if (follow) {
      // The child's context is adopted once the child shows in /proc (a few ms after the
      // fork) and its writes since the fork are collected then. What a child writes after the
      // monitor's last scan of it and before it exits is lost (its memory is gone when the
      // monitor looks next): only pages of the child's last two log intervals (100 ms each)
      // may be missing.
      PageSet child_end = read_log(log + ".child", 2);
      std::size_t missing_early = 0;
      for (auto p : child)
        if (!got.contains(p) && !child_end.contains(p)) ++missing_early;
      EXPECT_EQ(missing_early, 0u) << what;
      EXPECT_GE(child_seen * 10, child.size() * 8) << what;
    } else {
      EXPECT_EQ(child_seen, 0u) << what;
    }
  }
}

struct Flags {
  std::vector<std::uint64_t> avalanche, phase;  // intervals that raised each flag
};

Flags flags_of(const GlassRun& run) {
  Flags f;
  for (const auto& j : run.intervals) {
    const auto& t = j.at("telemetry");
    if (t.at("memory_avalanche_detected").get<bool>()) f.avalanche.push_back(j.at("interval").get<std::uint64_t>());
    if (t.at("phase_transition_detected").get<bool>()) f.phase.push_back(j.at("interval").get<std::uint64_t>());
  }
  return f;
}

// The detectors (docs/glass.md) through the tool, in full and in sampled mode: a burst across
// the region raises the avalanche flag, the hot set moving raises the phase-transition flag
// (once), and a steady sweep raises neither. The region (64 MiB) is most of what is tracked,
// so the burst spreads over the whole grid as the avalanche definition requires.
TEST_F(GlassCli, DetectorsFireOnTheirWorkloadsOnly) {
  for (const std::vector<std::string>& mode : {std::vector<std::string>{"--full"}, std::vector<std::string>{}}) {
    const std::string name = mode.empty() ? "sampled" : "full";
    std::vector<std::string> options{"--interval-ms", "100"};
    options.insert(options.end(), mode.begin(), mode.end());
    GlassRun burst = launch_held(options, {"burst", "--size", "64M", "--rate", "10000", "--duration-ms", "3000"});
    ASSERT_EQ(burst.code, 0) << burst.err;
    Flags fb = flags_of(burst);
    EXPECT_FALSE(fb.avalanche.empty()) << name << " burst: no avalanche";

    GlassRun hot = launch_held(options, {"hotset-move", "--size", "64M", "--rate", "10000", "--duration-ms", "3000"});
    ASSERT_EQ(hot.code, 0) << hot.err;
    Flags fh = flags_of(hot);
    EXPECT_EQ(fh.phase.size(), 1u) << name << " hotset-move: phase transitions at " << json(fh.phase).dump();
    EXPECT_TRUE(fh.avalanche.empty()) << name << " hotset-move: avalanches at " << json(fh.avalanche).dump();

    GlassRun sweep = launch_held(options, {"sweep", "--size", "64M", "--rate", "10000", "--duration-ms", "3000"});
    ASSERT_EQ(sweep.code, 0) << sweep.err;
    Flags fs = flags_of(sweep);
    EXPECT_TRUE(fs.avalanche.empty()) << name << " sweep: avalanches at " << json(fs.avalanche).dump();
    EXPECT_TRUE(fs.phase.empty()) << name << " sweep: phase transitions at " << json(fs.phase).dump();
  }
}

}  // namespace
