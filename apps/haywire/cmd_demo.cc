// haywire demo: boot the default guest, show what Haywire sees, shut it down.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "beacon_view.h"
#include "cli.h"
#include "haywire/base/parse.h"
#include "haywire/guest/search.h"
#include "haywire/guest/snapshot.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/vm.h"

namespace haywire::cli {
namespace {

using namespace std::chrono_literals;

std::atomic<bool> g_interrupted{false};
void on_signal(int /*sig*/) { g_interrupted = true; }

struct DemoOptions {
  std::string name = "demo";
  std::string mem = "256M";
  std::string accel = "auto";
  int seconds = 5;
  int hz = 20;
  bool keep = false;
  bool json = false;
  int top_seconds = 0;  // process table: 0 = until Ctrl-C
};

void say(bool json, const nlohmann::json& j, const std::string& text) {
  if (json) print_json(j);
  else std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

// 4. The guest's process table read through the companion's beacon, refreshed like `top`.
void show_guest_processes(const DemoOptions& o, const guest::GuestRam& ram) {
  auto reader = find_beacon(ram, 15000, beacon_hint_file(o.name));
  if (!reader) {
    say(o.json, {{"event", "processes"}, {"error", reader.error().message()}},
        "no process table: " + reader.error().message());
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  while (!g_interrupted) {
    if (auto r = reader->refresh(); !r) {
      say(o.json, {{"event", "processes"}, {"error", r.error().message()}}, "beacon lost: " + r.error().message());
      return;
    }
    auto rows = reader->processes();
    if (!o.json) {
      // Like top: the biggest resident sets first, so user processes are not hidden below the
      // kernel threads (RSS 0) when the table is cut at 40 rows.
      std::stable_sort(rows.begin(), rows.end(), [](const beacon::ProcessRow& a, const beacon::ProcessRow& b) {
        return a.rss_kb > b.rss_kb;
      });
    }
    if (o.json) {
      say(true, {{"event", "processes"}, {"cycle", reader->master().cycle}, {"rows", process_rows_json(rows)}}, "");
    } else {
      std::printf("\x1b[H\x1b[2J");  // like top: redraw in place
      std::printf("guest processes of VM '%s', from the companion's beacon (cycle %llu, %zu processes) - Ctrl-C to stop\n\n%s",
                  o.name.c_str(), static_cast<unsigned long long>(reader->master().cycle), rows.size(),
                  format_process_table(rows, 40).c_str());
      std::printf("(~ approximate: round-robin data; ! stale)\n");
      std::fflush(stdout);
    }
    if (o.top_seconds > 0 && std::chrono::steady_clock::now() - start >= std::chrono::seconds(o.top_seconds)) return;
    for (int i = 0; i < 20 && !g_interrupted; ++i) std::this_thread::sleep_for(50ms);
  }
}

int run_demo(const DemoOptions& o) {
  auto size = parse_size(o.mem);
  if (!size) return report(size.error());
  auto accel = vm::parse_accel(o.accel);
  if (!accel) return report(accel.error());
  if (o.hz < 1 || o.hz > 1000 || o.seconds < 1) return report(InvalidArgument{"--hz must be 1-1000 and --seconds at least 1"});

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  // Reuse a VM that `haywire demo --keep` left running; otherwise boot one and own it.
  bool started = false;
  auto info = vm::load(o.name);
  if (info && !vm::is_vm_process(info->pid, info->mem_path)) {
    (void)vm::down(o.name);
    info = fail(NotFound{"stale"});
  }
  if (!info) {
    if (!o.json) std::printf("booting the default guest '%s' (%s RAM, %s)...\n", o.name.c_str(), human_bytes(*size).c_str(),
                             *accel == vm::Accel::kKvm || (*accel == vm::Accel::kAuto && vm::kvm_accelerated()) ? "KVM" : "TCG");
    std::fflush(stdout);
    auto t0 = std::chrono::steady_clock::now();
    info = vm::up(vm::VmSpec{.name = o.name, .mem_size = *size, .accel = *accel, .wait_ready = true});
    if (!info) return report(info.error());
    started = true;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    say(o.json, {{"event", "booted"}, {"vm", vm::to_json(*info)}, {"seconds", secs}},
        fmt::format("guest userspace is up after {:.1f} s (QEMU pid {}, RAM in {})", secs, info->pid, info->mem_path));
  }
  auto finish = [&](int code) {
    if (started && !o.keep) {
      if (auto d = vm::down(o.name); !d) return report(d.error());
      say(o.json, {{"event", "down"}, {"vm", o.name}}, fmt::format("VM '{}' shut down; nothing left in /dev/shm", o.name));
    } else {
      say(o.json, {{"event", "kept"}, {"vm", o.name}},
          fmt::format("VM '{}' left running: try `haywire mem find {} HAYWIRE-MARKER`, then `haywire vm down {}`", o.name, o.name, o.name));
    }
    return code;
  };

  // 1. What QMP says.
  {
    auto client = qmp::Client::connect(info->qmp, 5s);
    if (!client) return finish(report(client.error()));
    auto status = qmp::query_status(*client);
    if (!status) return finish(report(status.error()));
    const auto& v = client->greeting()["QMP"]["version"]["qemu"];
    std::string qemu_version = v.is_object() ? fmt::format("{}.{}.{}", v.value("major", 0), v.value("minor", 0), v.value("micro", 0)) : "?";
    say(o.json, {{"event", "status"}, {"status", status->status}, {"qemu", qemu_version}},
        fmt::format("QMP: VM '{}' is {} (QEMU {})", o.name, status->status, qemu_version));
  }

  // 2. What guest RAM says.
  auto ram = guest::GuestRam::open(info->mem_path, info->mem_size, info->layout);
  if (!ram) return finish(report(ram.error()));
  if (auto banner = guest::find_kernel_banner(*ram))
    say(o.json, {{"event", "banner"}, {"pa", hex(banner->where.value())}, {"text", banner->text}},
        fmt::format("guest kernel, found in guest RAM at {}:\n  {}", hex(banner->where.value()), banner->text));
  else
    say(o.json, {{"event", "banner"}, {"pa", nullptr}}, "no Linux version banner found in guest RAM");

  // 3. Live: snapshots at --hz, one line a second.
  guest::Snapshot a(ram->size()), b(ram->size());
  guest::Snapshot* prev = &a;
  guest::Snapshot* cur = &b;
  if (auto r = guest::take_snapshot(*ram, *prev); !r) return finish(report(r.error()));
  const auto period = std::chrono::microseconds(1'000'000 / o.hz);
  // A little past the last whole second, so that its line is printed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.seconds) + 100ms;
  auto second_start = std::chrono::steady_clock::now();
  int count = 0;
  std::uint64_t torn = 0, changed_last = 0;
  std::vector<bool> changed_in_second(prev->page_hashes().size(), false);
  std::chrono::nanoseconds copy_time{0};
  std::uint64_t bytes_read = 0;
  auto next = std::chrono::steady_clock::now();
  while (!g_interrupted && std::chrono::steady_clock::now() < deadline) {
    auto rep = guest::take_snapshot(*ram, *cur);
    if (!rep) return finish(report(rep.error()));
    ++count;
    copy_time += rep->elapsed;
    bytes_read = rep->bytes_read;
    torn += rep->torn_pages.size();
    auto changed = guest::changed_pages(*prev, *cur);
    if (!changed) return finish(report(changed.error()));
    changed_last = changed->size();
    for (auto p : *changed) changed_in_second[p] = true;
    std::swap(prev, cur);
    auto now = std::chrono::steady_clock::now();
    if (now - second_start >= 1s) {
      double secs = std::chrono::duration<double>(now - second_start).count();
      double rate = count / secs;
      double ms_each = std::chrono::duration<double, std::milli>(copy_time).count() / std::max(count, 1);
      std::uint64_t distinct = 0;
      for (bool c : changed_in_second) distinct += c ? 1 : 0;
      say(o.json, {{"event", "live"}, {"snapshots_per_s", rate}, {"ms_per_snapshot", ms_each},
                   {"ram_bytes", ram->size()}, {"bytes_holding_data", bytes_read},
                   {"pages_changed_last_snapshot", changed_last}, {"pages_changed_last_second", distinct},
                   {"torn_pages", torn}},
          fmt::format("{:5.1f} snapshots/s, {:.1f} ms each ({} RAM, {} in use) | {:4} pages changed since the "
                      "last snapshot, {:5} in the last second | torn: {}",
                      rate, ms_each, human_bytes(ram->size()), human_bytes(bytes_read), changed_last, distinct, torn));
      count = 0;
      torn = 0;
      copy_time = {};
      std::fill(changed_in_second.begin(), changed_in_second.end(), false);
      second_start = now;
    }
    next += period;
    if (next > now) std::this_thread::sleep_until(next);
    else next = now;
  }
  if (!g_interrupted) show_guest_processes(o, *ram);
  if (g_interrupted && !o.json) std::printf("interrupted\n");
  return finish(kOk);
}

}  // namespace

void register_demo_command(CLI::App& app) {
  static DemoOptions o;
  auto* demo = app.add_subcommand("demo", "Boot the default guest, show its status, kernel banner and live RAM activity");
  demo->add_option("--name", o.name, "VM name")->capture_default_str();
  demo->add_option("--mem", o.mem, "guest RAM size")->capture_default_str();
  demo->add_option("--accel", o.accel, "auto, tcg or kvm")->capture_default_str();
  demo->add_option("--seconds", o.seconds, "how long to show live activity")->capture_default_str();
  demo->add_option("--hz", o.hz, "snapshots per second")->capture_default_str();
  demo->add_flag("--keep", o.keep, "leave the VM running for other commands");
  demo->add_option("--top-seconds", o.top_seconds, "how long to show the guest's process table (0: until Ctrl-C)")
      ->capture_default_str();
  demo->add_flag("--json", o.json, "one JSON object per line");
  demo->callback(run([] { return run_demo(o); }));
}

}  // namespace haywire::cli
