// haywire ps | maps | pagemap | beacon: the guest's processes as the in-guest companion
// publishes them through the beacon (docs/beacon-protocol.md).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "beacon_view.h"
#include "cli.h"
#include "haywire/base/fd.h"
#include "haywire/base/parse.h"
#include "haywire/beacon/reader.h"
#include "haywire/guest/writer.h"
#include "haywire/vm/vm.h"

namespace haywire::cli {

using namespace std::chrono_literals;

std::string format_process_table(const std::vector<beacon::ProcessRow>& rows, std::size_t max_rows) {
  std::string out = fmt::format("{:>7} {:>7} {:>6} {:1} {:>9} {:>4} {:>8}  {}\n", "PID", "PPID", "UID", "S", "RSS", "THR", "AGE",
                                "COMMAND");
  std::size_t n = 0;
  for (const auto& r : rows) {
    if (max_rows != 0 && n++ >= max_rows) {
      out += fmt::format("... {} more\n", rows.size() - max_rows);
      break;
    }
    const char mark = r.stale ? '!' : r.source == beacon::Source::kRoundRobin ? '~' : ' ';
    if (r.source == beacon::Source::kPidOnly) {
      out += fmt::format("{:>7} {:>7} {:>6} {:1} {:>9} {:>4} {:>8} {}(not yet read)\n", r.pid, "-", "-", "-", "-", "-", "-", mark);
      continue;
    }
    std::string age = r.age_ms ? (*r.age_ms >= 10000 ? fmt::format("{:.0f}s", *r.age_ms / 1000) : fmt::format("{:.0f}ms", *r.age_ms)) : "-";
    std::string cmd = r.cmdline.empty() ? "[" + r.comm + "]" : r.cmdline;
    if (cmd.size() > 80) cmd = cmd.substr(0, 77) + "...";
    out += fmt::format("{:>7} {:>7} {:>6} {:1} {:>9} {:>4} {:>8} {}{}\n", r.pid, r.ppid, r.uid, r.state, human_bytes(r.rss_kb * 1024),
                       r.threads, age, mark, cmd);
  }
  return out;
}

nlohmann::json process_rows_json(const std::vector<beacon::ProcessRow>& rows) {
  auto arr = nlohmann::json::array();
  for (const auto& r : rows) {
    const bool known = r.source != beacon::Source::kPidOnly;
    arr.push_back({{"pid", r.pid},
                   {"ppid", known ? nlohmann::json(r.ppid) : nlohmann::json(nullptr)},
                   {"uid", known ? nlohmann::json(r.uid) : nlohmann::json(nullptr)},
                   {"state", known ? nlohmann::json(std::string(1, r.state)) : nlohmann::json(nullptr)},
                   {"comm", r.comm},
                   {"cmdline", r.cmdline},
                   {"rss_kb", known ? nlohmann::json(r.rss_kb) : nlohmann::json(nullptr)},
                   {"threads", known ? nlohmann::json(r.threads) : nlohmann::json(nullptr)},
                   {"age_ms", r.age_ms ? nlohmann::json(*r.age_ms) : nlohmann::json(nullptr)},
                   {"source", std::string(beacon::to_string(r.source))},
                   {"approximate", r.source == beacon::Source::kRoundRobin},
                   {"stale", r.stale}});
  }
  return arr;
}

namespace {
std::string first_word(const std::string& text) {
  const auto b = text.find_first_not_of(" \t\n");
  if (b == std::string::npos) return {};
  return text.substr(b, text.find_first_of(" \t\n", b) - b);
}
}  // namespace

Result<beacon::BeaconReader> find_beacon(const guest::GuestRam& ram, int wait_ms, const std::string& hint_file) {
  // Where the master was last found: one page read instead of a scan of all guest RAM.
  std::optional<PhysAddr> hint;
  if (!hint_file.empty()) {
    if (auto text = read_text_file(hint_file, 64); text) {
      if (auto pa = parse_hex(first_word(*text)); pa) hint = PhysAddr(*pa);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    auto reader = hint ? beacon::BeaconReader::discover(ram, {}, *hint) : beacon::BeaconReader::discover(ram);
    if (reader && !hint_file.empty() && (!hint || reader->master_address() != *hint)) {
      // Best effort: a cache that cannot be written only costs the next command a scan.
      (void)write_text_file_atomic(hint_file, fmt::format("0x{:x}\n", reader->master_address().value()));
    }
    if (reader || std::chrono::steady_clock::now() >= deadline) return reader;
    std::this_thread::sleep_for(200ms);
  }
}

std::string beacon_hint_file(const std::string& vm_name) {
  return vm_name.empty() ? std::string() : vm::runtime_root() + "/" + vm_name + "/beacon-master";
}

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int /*sig*/) { g_stop = true; }
void catch_ctrl_c() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

struct Common {
  TargetOptions target;
  bool json = false;
  int wait_ms = 0;
};

struct Session {
  vm::Attachment att;
  // The reader points into att.ram: keep both together, att first.
  std::optional<beacon::BeaconReader> reader;
};

Result<std::unique_ptr<Session>> open_session(const Common& c) {
  auto target = c.target.target();
  if (!target) return std::unexpected(target.error());
  auto att = vm::attach(*target);
  if (!att) return std::unexpected(att.error());
  auto s = std::make_unique<Session>(Session{std::move(*att), std::nullopt});
  auto reader = find_beacon(s->att.ram, c.wait_ms, beacon_hint_file(c.target.name));
  if (!reader) return std::unexpected(std::move(reader.error()).with_context("VM '" + s->att.label + "'"));
  s->reader.emplace(std::move(*reader));
  return s;
}

void add_common(CLI::App* cmd, Common& c) {
  c.target.add_to(*cmd);
  cmd->add_flag("--json", c.json, "print JSON");
  cmd->add_option("--wait", c.wait_ms, "keep looking for the beacon this many ms (companion starting)")->capture_default_str();
}

Error pid_not_found(const beacon::BeaconReader& r, std::uint32_t pid) {
  const auto& pids = r.pids();
  if (std::find(pids.begin(), pids.end(), pid) != pids.end())
    return NotFound{fmt::format("sections of PID {} (the round robin has not visited it yet)", pid),
                    fmt::format("retry in a few seconds, or run `haywire pagemap NAME {}` to put a camera on it", pid)};
  return NotFound{fmt::format("PID {} in the guest", pid), "list the guest's processes with `haywire ps NAME`"};
}

int run_ps(const Common& c) {
  auto s = open_session(c);
  if (!s) return report(s.error());
  auto rows = (*s)->reader->processes();
  if (c.json) print_json(process_rows_json(rows));
  else
    std::printf("%s(~ approximate: round-robin data; ! stale; AGE: how old the row's data is)\n", format_process_table(rows).c_str());
  return kOk;
}

struct MapsOptions {
  Common c;
  std::uint32_t pid = 0;
};

int run_maps(const MapsOptions& o) {
  auto s = open_session(o.c);
  if (!s) return report(s.error());
  auto d = (*s)->reader->process(o.pid);
  if (!d) return report(pid_not_found(*(*s)->reader, o.pid));
  if (o.c.json) {
    auto arr = nlohmann::json::array();
    for (const auto& sec : d->process.sections)
      arr.push_back({{"start", hex(sec.start)}, {"end", hex(sec.end)}, {"perms", sec.perms}, {"offset", hex(sec.offset)},
                     {"dev", fmt::format("{:02x}:{:02x}", sec.dev_major, sec.dev_minor)}, {"inode", sec.inode}, {"path", sec.path}});
    print_json({{"pid", o.pid}, {"source", std::string(beacon::to_string(d->source))}, {"age_ms", d->age_ms}, {"stale", d->stale},
                {"truncated", (d->process.flags & beacon::kProcessSectionsTruncated) != 0}, {"sections", arr}});
    return kOk;
  }
  for (const auto& sec : d->process.sections)
    std::printf("%012llx-%012llx %s %08llx %02x:%02x %-10llu %s\n", static_cast<unsigned long long>(sec.start),
                static_cast<unsigned long long>(sec.end), sec.perms.c_str(), static_cast<unsigned long long>(sec.offset),
                sec.dev_major, sec.dev_minor, static_cast<unsigned long long>(sec.inode), sec.path.c_str());
  std::fprintf(stderr, "(%zu sections from %s data, %.0f ms old%s%s)\n", d->process.sections.size(),
               std::string(beacon::to_string(d->source)).c_str(), d->age_ms, d->stale ? ", stale" : "",
               (d->process.flags & beacon::kProcessSectionsTruncated) != 0 ? ", truncated by the companion" : "");
  return kOk;
}

struct PagemapOptions {
  Common c;
  std::uint32_t pid = 0;
  bool frames = false;
  bool watch = false;
  int timeout_ms = 3000;
  std::uint32_t priority = 1;
};

nlohmann::json summary_json(const beacon::PagemapSummary& m, bool frames) {
  nlohmann::json j{{"pid", m.pid},
                   {"present_runs", m.present_runs}, {"swapped_runs", m.swapped_runs}, {"empty_runs", m.empty_runs},
                   {"present_pages", m.present_pages}, {"swapped_pages", m.swapped_pages}, {"empty_pages", m.empty_pages},
                   {"resident_pages", m.resident_pages}, {"mapped_pages", m.mapped_pages},
                   {"raw_bytes", m.raw_bytes}, {"encoded_bytes", m.encoded_bytes}, {"compression_ratio", m.compression_ratio},
                   {"windowed", m.windowed}, {"truncated", m.truncated}, {"frames_known", m.frames_known},
                   {"generation", m.generation}, {"age_ms", m.age_ms}, {"stale", m.stale}};
  if (frames) {
    auto arr = nlohmann::json::array();
    for (const auto& r : m.present) arr.push_back({{"va", hex(r.first_page * kPageSize)}, {"pages", r.length}, {"pfn", hex(r.value)}});
    j["frames"] = arr;
  }
  return j;
}

void print_summary(const beacon::PagemapSummary& m, bool frames) {
  std::printf("PID %u pagemap (camera generation %u, %.0f ms old%s%s%s)\n", m.pid, m.generation, m.age_ms, m.stale ? ", STALE" : "",
              m.windowed ? ", windowed" : "", m.truncated ? ", truncated" : "");
  std::printf("  resident %llu pages (%s), swapped %llu, empty %llu of %llu mapped\n",
              static_cast<unsigned long long>(m.resident_pages), human_bytes(m.resident_pages * kPageSize).c_str(),
              static_cast<unsigned long long>(m.swapped_pages), static_cast<unsigned long long>(m.empty_pages),
              static_cast<unsigned long long>(m.mapped_pages));
  std::printf("  runs: %llu present, %llu swapped, %llu empty; RLE %s for %s of raw pagemap (%.1fx)\n",
              static_cast<unsigned long long>(m.present_runs), static_cast<unsigned long long>(m.swapped_runs),
              static_cast<unsigned long long>(m.empty_runs), human_bytes(m.encoded_bytes).c_str(), human_bytes(m.raw_bytes).c_str(),
              m.compression_ratio);
  if (!frames) return;
  if (!m.frames_known) std::printf("  (physical frames unknown: the companion cannot read them)\n");
  for (const auto& r : m.present)
    std::printf("  %012llx  %6llu pages  pfn %#llx\n", static_cast<unsigned long long>(r.first_page * kPageSize),
                static_cast<unsigned long long>(r.length), static_cast<unsigned long long>(r.value));
}

int run_pagemap(const PagemapOptions& o) {
  auto s = open_session(o.c);
  if (!s) return report(s.error());
  auto& reader = *(*s)->reader;
  const auto& pids = reader.pids();
  if (!pids.empty() && std::find(pids.begin(), pids.end(), o.pid) == pids.end())
    return report(pid_not_found(reader, o.pid));
  const auto& att = (*s)->att;
  // Every guest write is logged in the VM's run directory (stderr for a QEMU started by hand).
  std::string log_path = o.c.target.name.empty() ? std::string() : vm::runtime_root() + "/" + o.c.target.name + "/guest-writes.log";
  auto writer = guest::GuestWriter::open(att.mem_path, att.ram.layout(), "haywire pagemap", guest::log_file_sink(log_path));
  if (!writer) return report(writer.error());
  auto outcome = reader.request_camera(*writer, o.pid, o.priority, std::chrono::milliseconds(o.timeout_ms));
  if (!outcome) {
    if (outcome.error().is<Timeout>())
      return report(std::move(outcome.error())
                        .with_context("no camera: is the companion cycling? check `haywire beacon " + att.label + "`"));
    return report(outcome.error());
  }
  if (outcome->state == beacon::CameraState::kProcessGone)
    return report(NotFound{fmt::format("PID {} in the guest (the companion says it is gone)", o.pid), "list processes with `haywire ps`"});
  if (outcome->state == beacon::CameraState::kNoCapacity)
    return report(NotFound{"a free camera", "every camera is in use; wait for one to be released or restart the companion with more"});
  catch_ctrl_c();
  for (;;) {
    auto m = reader.pagemap(o.pid);
    if (!m) return report(NotFound{fmt::format("camera data for PID {}", o.pid), "the process may have exited"});
    if (o.c.json) print_json(summary_json(*m, o.frames));
    else print_summary(*m, o.frames);
    std::fflush(stdout);
    if (!o.watch) break;
    for (int i = 0; i < 10 && !g_stop; ++i) std::this_thread::sleep_for(50ms);
    if (g_stop) break;
    if (auto r = reader.refresh(); !r) return report(r.error());
  }
  return kOk;
}

std::string_view block_type_name(beacon::BlockType t) {
  switch (t) {
    case beacon::BlockType::kMaster: return "master";
    case beacon::BlockType::kPageTable: return "page-table";
    case beacon::BlockType::kPids: return "pids";
    case beacon::BlockType::kRoundRobin: return "round-robin";
    case beacon::BlockType::kCamera: return "camera";
    case beacon::BlockType::kUnused: return "unused";
  }
  return "?";
}

std::string_view status_name(beacon::BlockStatus s) {
  switch (s) {
    case beacon::BlockStatus::kUnused: return "unused";
    case beacon::BlockStatus::kValidating: return "validating";
    case beacon::BlockStatus::kActive: return "active";
    case beacon::BlockStatus::kInvalid: return "invalid";
  }
  return "?";
}

int run_beacon(const Common& c) {
  auto s = open_session(c);
  if (!s) return report(s.error());
  const auto& r = *(*s)->reader;
  const auto& m = r.master();
  auto blocks = r.blocks();
  if (c.json) {
    auto arr = nlohmann::json::array();
    for (const auto& b : blocks)
      arr.push_back({{"slot", b.slot}, {"type", std::string(block_type_name(b.type))}, {"camera", b.camera}, {"pages", b.pages},
                     {"block_pages", b.block_pages}, {"generation", b.generation}, {"last_valid_generation", b.last_valid_generation},
                     {"directory_status", std::string(status_name(b.directory_status))}, {"pa", hex(b.first_page_pa.value())},
                     {"age_ms", b.age_ms ? nlohmann::json(*b.age_ms) : nlohmann::json(nullptr)}, {"stale", b.stale}, {"status", b.status}});
    print_json({{"master_pa", hex(m.pa.value())}, {"session_id", hex(m.session_id)}, {"companion_pid", m.companion_pid},
                {"cycle", m.cycle}, {"area_pages", m.area_pages}, {"flags", m.flags}, {"blocks", arr}});
    return kOk;
  }
  std::printf("master at %s: session %s, companion PID %u, cycle %llu, %u pages%s%s\n", hex(m.pa.value()).c_str(),
              hex(m.session_id).c_str(), m.companion_pid, static_cast<unsigned long long>(m.cycle), m.area_pages,
              (m.flags & beacon::kMasterHasPhysicalFrames) != 0 ? ", physical frames" : ", no physical frames",
              (m.flags & beacon::kMasterRamFile) != 0 ? ", ram-file companion" : "");
  std::printf("%4s %-11s %3s %5s %5s %10s %10s %-10s %14s %8s  %s\n", "SLOT", "TYPE", "CAM", "PAGES", "USED", "GEN", "VALID GEN",
              "DIRECTORY", "PA", "AGE", "STATUS");
  for (const auto& b : blocks)
    std::printf("%4u %-11s %3u %5u %5u %10u %10u %-10s %14s %8s  %s\n", b.slot, std::string(block_type_name(b.type)).c_str(), b.camera,
                b.pages, b.block_pages, b.generation, b.last_valid_generation, std::string(status_name(b.directory_status)).c_str(),
                hex(b.first_page_pa.value()).c_str(), b.age_ms ? fmt::format("{:.0f}ms", *b.age_ms).c_str() : "-", b.status.c_str());
  return kOk;
}

}  // namespace

void register_beacon_commands(CLI::App& app) {
  static Common ps_opts, beacon_opts;
  static MapsOptions maps_opts;
  static PagemapOptions pm_opts;
  const char* footer = "Needs haywire-companion running in the guest (the default guest image starts it).";

  auto* ps = app.add_subcommand("ps", "The guest's processes, read from the companion's beacon");
  add_common(ps, ps_opts);
  ps->footer(footer);
  ps->callback(run([] { return run_ps(ps_opts); }));

  auto* maps = app.add_subcommand("maps", "A guest process's memory sections, like /proc/PID/maps");
  add_common(maps, maps_opts.c);
  maps->add_option("pid", maps_opts.pid, "guest PID")->required();
  maps->footer(footer);
  maps->callback(run([] { return run_maps(maps_opts); }));

  auto* pm = app.add_subcommand("pagemap", "Put a camera on a guest process and print its pagemap summary");
  add_common(pm, pm_opts.c);
  pm->add_option("pid", pm_opts.pid, "guest PID")->required();
  pm->add_flag("--frames", pm_opts.frames, "list the physical frames of the resident runs");
  pm->add_flag("--watch", pm_opts.watch, "keep refreshing until Ctrl-C");
  pm->add_option("--timeout", pm_opts.timeout_ms, "ms to wait for the camera")->capture_default_str();
  pm->add_option("--priority", pm_opts.priority, "camera priority (higher keeps its camera when recycling)")->capture_default_str();
  pm->footer(footer);
  pm->callback(run([] { return run_pagemap(pm_opts); }));

  auto* b = app.add_subcommand("beacon", "State of every beacon block (for debugging the companion)");
  add_common(b, beacon_opts);
  b->footer(footer);
  b->callback(run([] { return run_beacon(beacon_opts); }));
}

}  // namespace haywire::cli
