// haywire glass [--pid PID | -- CMD ARGS...]: live write activity of a host process.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli.h"
#include "haywire/base/parse.h"
#include "haywire/glass/monitor.h"
#include "haywire/glass/png.h"
#include "haywire/glass/render.h"

namespace haywire::cli {
namespace {

volatile bool g_stop = false;
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  g_stop = true;
}

// How long a launched target has to exit after we pass SIGTERM or SIGHUP on to it.
constexpr std::chrono::seconds kTargetStopGrace{10};

struct GlassOptions {
  int pid = 0;
  std::vector<std::string> command;
  int interval_ms = static_cast<int>(glass::MonitorOptions{}.interval.count());
  bool full = false;
  double rate = glass::MonitorOptions{}.sampling_rate;
  bool fixed_rate = false;
  bool adaptive_ranges = false;
  unsigned order = 0;
  bool once = false;
  bool json = false;
  std::string png;
  std::string record;
  bool threads_view = false;
  bool follow_forks = false;
  bool no_thread_sampling = false;
  bool always_sample = false;
  bool fewer_faults = false;
  std::uint64_t calibrate_every = glass::MonitorOptions{}.calibrate_every;
  bool calibrate_fixed = false;  // --calibrate-every given: no back-off
  double calibration_window = glass::MonitorOptions{}.calibration_window;
  std::uint64_t intervals = 0;  // 0: until the target exits or Ctrl-C
};

// "0x..." in lower-case hex, as hex() writes it, without a format call (see interval_line).
void append_hex_string(std::string& out, std::uint64_t value) {
  char digits[16];
  char* p = std::end(digits);
  do {
    *--p = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  out += "\"0x";
  out.append(p, std::end(digits));
  out += '"';
}

// One interval as a JSON line. `written` can hold thousands of ranges per interval (a process
// that writes scattered pages); built as nlohmann values, two strings and four
// allocations per range, it took a third of the monitor's time at 1 GiB (and fmt's format
// parsing half of what was left). So the rest of the object goes through nlohmann and the
// list is written straight into the line.
std::string interval_line(const GlassOptions& o, const glass::Monitor& monitor, const glass::IntervalReport& r) {
  const nlohmann::json head = {{"pid", monitor.pid().value()},
                               {"interval", r.index},
                               {"interval_ms", o.interval_ms},
                               {"mode", o.full ? "full" : "sampled"},
                               {"calibration", r.calibration},
                               {"sampling_paused", r.sampling_paused},
                               {"written_pages", r.written_pages},
                               {"armed_pages", r.armed_pages},
                               {"tracked_pages", r.tracked_pages},
                               {"telemetry", glass::to_json(r.telemetry)}};
  std::string line = head.dump();
  line.pop_back();  // the object's closing brace: `written` goes last
  line.reserve(line.size() + 16 + r.written.size() * 40);
  line += R"(,"written":[)";
  for (std::size_t i = 0; i < r.written.size(); ++i) {
    line += i == 0 ? "[" : ",[";
    append_hex_string(line, r.written[i].start.value());
    line += ',';
    append_hex_string(line, r.written[i].end.value());
    line += ']';
  }
  line += "]}";
  return line;
}

Result<void> render_to(const std::string& path, const GlassOptions& o, const glass::IntervalReport& r,
                       glass::Image& image) {
  if (o.threads_view && r.threads.order != 0) {
    glass::render_threads(r.threads, image);
  } else {
    glass::render_heatmap(r.density, image);
  }
  glass::draw_overlays(image, glass::Overlays{r.avalanche_mask, r.phase_mask});
  return glass::write_png(path, image);
}

int run_glass(const GlassOptions& o) {
  if ((o.pid != 0) == !o.command.empty()) {
    return report(Error(InvalidArgument{"give either --pid PID or -- CMD ARGS... (see haywire glass --help)"}));
  }
  if (o.pid < 0) return report(Error(InvalidArgument{"--pid must be a process id (a positive number)"}));
  if (o.once && o.pid == 0) {
    return report(Error(InvalidArgument{"--once attaches to a running process: use it with --pid"}));
  }
  if (o.interval_ms < 10 || o.interval_ms > 60000) {
    return report(Error(InvalidArgument{"--interval-ms must be between 10 and 60000"}));
  }
  if (o.rate < 0.05 || o.rate > 0.5) return report(Error(InvalidArgument{"--rate must be between 0.05 and 0.5"}));
  if (o.order > 12) return report(Error(InvalidArgument{"--order must be between 1 and 12"}));
  if (!o.record.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.record, ec);
    if (ec) return report(Error(IoError{"cannot create --record directory " + o.record, ec.value()}));
  }

  glass::MonitorOptions options;
  options.interval = std::chrono::milliseconds(o.interval_ms);
  options.full = o.full;
  options.sampling_rate = o.rate;
  options.adaptive = !o.fixed_rate;
  options.adaptive_ranges = o.adaptive_ranges;
  options.order = o.order;
  options.calibrate_every = o.calibrate_every;
  if (o.calibrate_fixed) options.calibrate_max_every = o.calibrate_every;
  options.calibration_window = o.calibration_window;
  options.thread_sampling = !o.no_thread_sampling;
  options.follow_forks = o.follow_forks;
  options.pause_sampling = !o.always_sample;
  options.disarm_after_full = o.fewer_faults;

  // Each interval builds the same few hundred KiB of maps, masks and counts. By default glibc
  // serves those from fresh mmaps or trims them off the heap between intervals, so every
  // interval paid page faults and zeroing for them again (about 5 % of the monitor's time on
  // a 1 GiB target): keep them in the heap for reuse instead.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 128 << 20);

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGHUP, &action, nullptr);

  auto monitor = o.pid != 0 ? glass::Monitor::attach(Pid(o.pid), options) : glass::Monitor::launch(o.command, options);
  if (!monitor) return report(monitor.error());
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (!o.once) std::fprintf(stderr, "glass: %s; Ctrl-C to detach\n", monitor->how().c_str());

  std::ofstream telemetry_stream;
  if (!o.record.empty()) telemetry_stream.open(o.record + "/telemetry.jsonl", std::ios::trunc);
  glass::Image image;
  int code = kOk;
  std::uint64_t done = 0;
  while (!g_stop) {
    auto r = monitor->next(&g_stop);
    if (!r) {
      code = report(r.error());
      break;
    }
    ++done;
    const bool json_out = o.once || o.json;
    std::string line = json_out || !o.record.empty() ? interval_line(o, *monitor, *r) : std::string();
    if (json_out) {
      print_line(line);
    } else {
      std::fprintf(stderr, tty ? "\r\033[K%s" : "%s\n", glass::to_line(r->telemetry, r->sampling_paused).c_str());
    }
    if (!o.png.empty()) {
      if (auto w = render_to(o.png, o, *r, image); !w) {
        code = report(w.error());
        break;
      }
    }
    if (!o.record.empty()) {
      auto frame = fmt::format("{}/frame-{:06d}.png", o.record, r->index);
      if (auto w = render_to(frame, o, *r, image); !w) {
        code = report(w.error());
        break;
      }
      telemetry_stream << line << '\n';
      telemetry_stream.flush();
    }
    if (o.once) break;
    if (monitor->target_exited() || (o.intervals != 0 && done >= o.intervals)) break;
  }
  if (tty && !o.once && !o.json) std::fputc('\n', stderr);

  bool exited = monitor->target_exited();
  if (auto d = monitor->detach(); !d && !exited) code = report(d.error());
  const int stop_signal = g_stop_signal;
  if (o.pid == 0 && !exited && (stop_signal == SIGTERM || stop_signal == SIGHUP)) {
    // Whoever stopped us (timeout, a supervisor, a closed terminal) means the program we started
    // too, as `perf record` does; Ctrl-C reached it through the terminal already, and the end of
    // --intervals or --once leaves it running on purpose.
    if (auto sent = monitor->signal_target(stop_signal); !sent) {
      code = report(sent.error());
    } else {
      std::fprintf(stderr, "glass: passed SIG%s on to pid %d\n", ::sigabbrev_np(stop_signal), monitor->pid().value());
      exited = monitor->wait_exit(kTargetStopGrace);
    }
  }
  if (o.pid == 0) {
    if (exited) {
      if (auto status = monitor->wait_target(); status && !o.json) {
        int s = *status;
        if (WIFEXITED(s)) std::fprintf(stderr, "glass: target exited with status %d\n", WEXITSTATUS(s));
        if (WIFSIGNALED(s)) std::fprintf(stderr, "glass: target killed by signal %d\n", WTERMSIG(s));
      }
    } else if (!o.once) {
      std::fprintf(stderr, "glass: detached; pid %d keeps running untracked\n", monitor->pid().value());
    }
  } else if (!o.once && !o.json) {
    std::fprintf(stderr, "glass: detached from pid %d\n", o.pid);
  }
  return code;
}

}  // namespace

void register_glass_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("glass", "Watch where a host process writes memory, live (userfaultfd + PAGEMAP_SCAN)");
  cmd->footer(
      "Examples:\n"
      "  haywire glass -- ./my-program arg        start a program and watch it\n"
      "  haywire glass --pid 1234 --png heat.png  attach to a running process, heat map every interval\n"
      "  haywire glass --pid 1234 --once --full --json\n"
      "Sampled mode (default) arms a fraction of the pages each interval and reconstructs the map;\n"
      "a calibration interval also arms a quarter of the pages (--calibration-window), measures the\n"
      "accuracy there and adapts the rate: by default the 10th, then twice as far apart (up to every\n"
      "40th) while accuracy stays comfortable; --calibrate-every N fixes it.\n"
      "Sampling pauses (full tracking) while the target seldom writes a page again within 160 intervals\n"
      "(16 s at 10 Hz): it would fault on nearly every write anyway; --always-sample keeps it on.\n"
      "Ctrl-C detaches; a started program runs on (the terminal's Ctrl-C reaches it too). SIGTERM or\n"
      "SIGHUP also stop a program glass started.");
  auto o = std::make_shared<GlassOptions>();
  cmd->add_option("--pid", o->pid, "attach to this running process (ptrace injection, no cooperation)");
  cmd->add_option("command", o->command, "program and arguments to start and watch (after --)");
  cmd->add_option("--interval-ms", o->interval_ms, "interval between scans (default 100 = 10 Hz)");
  cmd->add_flag("--full", o->full, "arm every page every interval (exact; default: sampled)");
  cmd->add_option("--rate", o->rate, "initial sampling rate, 0.05..0.5 (default 0.10)");
  cmd->add_flag("--fixed-rate", o->fixed_rate, "do not adapt the sampling rate");
  cmd->add_flag("--adaptive-ranges", o->adaptive_ranges,
                "use the fewest plan ranges that keep F1 >= 0.97 at calibration (cheaper on workloads with "
                "locality, less accuracy margin)");
  auto* every = cmd->add_option("--calibrate-every", o->calibrate_every,
                                "every Nth interval calibrates (measures accuracy), at a fixed pace (0: never; "
                                "default 10, backing off to 40 while accurate)");
  cmd->add_option("--calibration-window", o->calibration_window,
                  "share of the pages a calibration arms and measures, 0.01..1 (default 0.25, moving on each "
                  "time; 1: every page, a full interval)")
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_flag("--always-sample", o->always_sample,
                "keep sampling when it saves the target nothing (default: track in full while the target "
                "seldom writes a page again within 160 intervals, until it does)");
  cmd->add_flag("--fewer-faults", o->fewer_faults,
                "sampled mode: after each full interval keep only the plan armed, so the target faults on\n"
                "about the plan's share of its writes; costs the monitor several times more CPU");
  cmd->add_option("--order", o->order, "Hilbert order of the picture, 1..12 (default: from the tracked size)");
  cmd->add_flag("--once", o->once, "one interval, print it (with --json) and detach (needs --pid)");
  cmd->add_flag("--json", o->json, "JSON: one object per interval on stdout");
  cmd->add_option("--png", o->png, "rewrite this PNG heat map every interval");
  cmd->add_option("--record", o->record, "write DIR/frame-NNNNNN.png per interval and DIR/telemetry.jsonl");
  cmd->add_flag("--threads", o->threads_view, "draw each thread's writes in its own colour (thread kinetic energy)");
  cmd->add_flag("--follow-forks", o->follow_forks, "track children the target forks");
  cmd->add_flag("--no-thread-sampling", o->no_thread_sampling, "no per-thread attribution (no synchronous faults at all)");
  cmd->add_option("--intervals", o->intervals, "stop after N intervals (default: until the target exits or Ctrl-C)");
  cmd->callback(run([o, every] {
    o->calibrate_fixed = every->count() > 0;
    return run_glass(*o);
  }));
}

}  // namespace haywire::cli
