#include "haywire/glass/monitor.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "haywire/glass/accuracy.h"
#include "haywire/glass/attach.h"
#include "haywire/glass/detectors.h"
#include "haywire/glass/kernel_support.h"
#include "haywire/glass/reconstruct.h"
#include "haywire/glass/sampling.h"
#include "haywire/glass/thread_sampler.h"
#include "haywire/glass/tracker.h"
#include "glass/uapi.h"

namespace haywire::glass {
namespace {

using Clock = std::chrono::steady_clock;

// Descriptors asked of the target: the async tracking context, and a sync one for the thread
// sampler.
constexpr int kDescriptors = 2;
// How long a failed kernel call waits for the target's exit before it counts as an error.
constexpr int kExitGraceMs = 250;

UffdFeatures async_features(const KernelSupport& k, bool follow_forks) {
  UffdFeatures f;
  f.wp_async = true;
  f.wp_unpopulated = true;
  // Layout events keep the tracker's registrations right without waiting for the next maps
  // re-read. EVENT_FORK needs CAP_SYS_PTRACE in the monitor; only asked for when following.
  f.event_remap = true;
  f.event_remove = true;
  f.event_unmap = true;
  f.event_fork = follow_forks && k.cap_sys_ptrace;
  return f;
}

std::vector<VirtRange> to_virt(std::span<const PageRange> ranges) {
  std::vector<VirtRange> out;
  out.reserve(ranges.size());
  for (const auto& r : ranges) out.push_back(VirtRange{r.start, r.end});
  return out;
}

// Address ranges -> sorted, coalesced ranges of line slots (pages without a slot dropped).
std::vector<PageIndexRange> to_slots(const AddressLayout& layout, std::span<const PageRange> ranges) {
  std::vector<PageIndexRange> slots;
  for (const auto& run : layout.slot_runs_of(to_virt(ranges))) slots.push_back(PageIndexRange{run.first, run.count});
  return normalized(std::move(slots));
}

std::uint64_t total_pages(const std::vector<PageRange>& ranges) {
  std::uint64_t n = 0;
  for (const auto& r : ranges) n += r.bytes() / kPageSize;
  return n;
}

PageGrid grid_of(const AddressLayout& layout) {
  return PageGrid{.order = layout.order(), .page_count = layout.line_pages(),
                  .pages_per_cell = layout.pages_per_cell()};
}

}  // namespace

struct Monitor::State {
  MonitorOptions options;
  Pid pid;
  std::string how;
  UniqueFd pidfd;
  std::optional<LaunchedTarget> launched;
  std::optional<Tracker> tracker;
  AddressLayout layout;
  std::optional<CalibrationController> controller;
  AvalancheDetector avalanche;
  PhaseTransitionDetector phase;
  std::uint64_t interval = 0;
  std::uint64_t events = 0;
  std::vector<PageIndexRange> armed;  // slots armed this interval (sampled plan)
  // A calibration interval: the slots a sampled interval would have watched besides its plan
  // (armed before the calibration armed its window or everything), for the calibration's replay.
  std::vector<PageIndexRange> still_armed;
  bool armed_full = true;
  // The calibration window (slots) this interval armed with its plan; empty when it armed none.
  std::vector<PageIndexRange> window;
  // Sampled mode: whether sampling pays (SamplingPause), fed from consecutive intervals of the
  // same kind; whether the last interval was full, the last one that armed every page, and
  // when each slot was last seen written.
  SamplingPause pause;
  bool paused = false;  // this interval is full because sampling is paused
  enum class Kind { kNone, kFull, kSampled };
  Kind last_kind = Kind::kFull;  // the start armed every page, like a full interval
  std::uint64_t last_armed_all = 0;
  WriteHistory history;  // only when keeps_history(): the pause is its one reader
  bool relaid_out = false;  // the last refresh replaced the layout (armed slots are stale)
  bool thread_sampling = false;
  bool exited = false;
  std::optional<int> exit_status;
  std::unordered_map<std::uint32_t, std::uint8_t> thread_slots;  // tid -> colour slot
  Clock::time_point interval_start;
  // --follow-forks: a fork message carries the child's context but not its PID, and the child
  // is not yet listed in /proc when the message arrives; so contexts wait here until a new child
  // shows up. Followed children are tracked in full; their writes are reported with the
  // parent's (same virtual addresses, so one picture for the family).
  std::vector<Uffd> pending_children;
  struct Child {
    Pid pid;
    Tracker tracker;
  };
  std::vector<Child> children;
  std::vector<Pid> known_children;  // every child seen at the last look, followed or not

  explicit State(AddressLayout l) : layout(std::move(l)) {}

  // The target exited (its pidfd, ours or the launch's, is readable). A target on its way out
  // tears its memory down before its pidfd becomes readable, and meanwhile our ioctls fail
  // (ENOENT, EAGAIN): after a failure, wait a little (`timeout_ms`) before calling it an error.
  int exit_fd() const { return launched && launched->pidfd ? launched->pidfd.get() : pidfd.get(); }
  bool poll_exit(int timeout_ms = 0) {
    if (exited) return true;
    int fd = exit_fd();
    if (fd < 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) > 0 && (p.revents & (POLLIN | POLLHUP)) != 0) exited = true;
    return exited;
  }

  // Whether sampled mode may pause: then each slot's last write is kept (2 bytes a slot).
  bool keeps_history() const { return !options.full && options.pause_sampling; }

  // Arms the plan of `interval` (sampled mode), or everything.
  Result<void> arm(std::uint64_t for_interval) {
    if (options.full || !controller) return {};
    SamplePlan plan = controller->plan(for_interval);
    // While paused every interval is exact: calibrations wait (one that falls due meanwhile
    // runs when sampling resumes).
    paused = pause.paused();
    const bool after_window = !window.empty();
    window.clear();
    still_armed.clear();
    const bool calibrating = !paused && controller->is_calibration(for_interval);
    if (calibrating && tracker->sampled() && !relaid_out) {
      if (auto known = tracker->known_armed(); known) still_armed = to_slots(layout, *known);
    }
    if (paused || plan.full(controller->grid().page_count)) {
      armed.clear();
      // Also when the interval just closed was full: its scan may have only read (it expected
      // a sampled interval next), and set_full() re-arms exactly what is not armed then.
      if (auto r = tracker->set_full(); !r) return r;
      armed_full = true;
      return {};
    }
    std::vector<PageRange> ranges;
    for (const auto& slots : plan.ranges) {
      for (const auto& v : layout.ranges_of_slots(slots.first, slots.count)) ranges.push_back(PageRange{v.start, v.end});
    }
    std::sort(ranges.begin(), ranges.end(), [](const PageRange& a, const PageRange& b) { return a.start < b.start; });
    // After an interval that armed every page (a full calibration, a paused one, or the start,
    // which interval 0 watched) or a calibration window, only the plan stays armed: every other
    // page would cost the target a fault at its next write, however late, and nobody reads it
    // (on `sort`, ~40 % of its faults under glass). One un-protect per tracked range; the plan
    // is then armed whole.
    if (for_interval >= 1 && (armed_full || after_window || for_interval == 1) && options.disarm_after_full) {
      if (auto r = tracker->disarm(); !r) return r;
    }
    armed = std::move(plan.ranges);
    armed_full = false;
    if (calibrating) window = controller->calibration_window();
    if (auto r = tracker->set_sampled(std::move(ranges)); !r) return r;
    // The window's re-protects are the calibration's, not what the plan costs per interval.
    if (const Tracker::Arming& a = tracker->last_arming(); a.informed && !calibrating)
      controller->note_arming(a.ranges, a.rearmed);
    return {};
  }

  Result<void> refresh_layout() {
    auto regions = to_virt(tracker->tracked());
    auto update = layout.update(regions);
    if (!update) return std::unexpected(update.error());
    if (layout.order() == 0) return {};
    relaid_out = false;
    // At launch the first layout holds only the loader's and libc's pages, so the default order
    // was chosen for a tiny space (order 4, 16 x 16, for a program that then maps gigabytes).
    // While the order is the default's, choose again when the tracked space outgrows it.
    if (options.order == 0 && default_layout_order(layout.tracked_pages()) > layout.order()) {
      auto fresh = AddressLayout::create(LayoutOptions{});
      if (!fresh) return std::unexpected(fresh.error());
      if (auto u = fresh->update(regions); !u) return std::unexpected(u.error());
      layout = std::move(*fresh);
      relaid_out = true;
    }
    // Every cell means something else now: the detectors' history no longer applies.
    if (relaid_out || update->rescaled) {
      avalanche.reset();
      phase.reset();
    }
    // Slots keep their pages unless the layout was replaced.
    if (keeps_history()) {
      if (relaid_out) {
        history.reset(layout.line_pages());
      } else {
        history.grow(layout.line_pages());
      }
    }
    PageGrid grid = grid_of(layout);
    if (!controller) {
      CalibrationConfig config;
      config.every = options.calibrate_every;
      config.max_every = options.calibrate_max_every;
      config.window_share = options.calibration_window;
      config.hold_intervals = options.hold_intervals;
      config.rate.initial_rate = std::clamp(options.sampling_rate, kMinSamplingRate, kMaxSamplingRate);
      config.rate.adaptive = options.adaptive;
      config.ranges.adaptive = options.adaptive_ranges;
      controller.emplace(grid, config);
      SamplingPauseConfig pausing;
      pausing.enabled = options.pause_sampling;
      pause = SamplingPause(pausing);
    } else if (grid.order != controller->grid().order || grid.page_count != controller->grid().page_count ||
               grid.pages_per_cell != controller->grid().pages_per_cell) {
      controller->set_grid(grid);
    }
    return {};
  }

  // Adopts pending fork contexts once their children are visible: the newest unknown child
  // gets the oldest context (forks are reported in order).
  void adopt_children() {
    if (pending_children.empty()) return;
    auto now = Tracker::children_of(pid);
    if (!now) return;
    std::vector<Pid> fresh;
    for (Pid c : *now)
      if (std::find(known_children.begin(), known_children.end(), c) == known_children.end()) fresh.push_back(c);
    known_children = *now;
    for (Pid c : fresh) {
      if (pending_children.empty()) break;
      Uffd context = std::move(pending_children.front());
      pending_children.erase(pending_children.begin());
      // The child's context inherited the parent's registrations and arming, so what the child
      // writes from the fork on shows in its pagemap. Tracker::create would arm everything
      // again and erase that, so the tracker starts with no region chosen; its first scan then
      // registers them and collects what was written before it (Tracker::refresh_layout) in
      // the same pass.
      auto started = std::make_shared<bool>(false);
      TrackerOptions child_options;
      child_options.follow_forks = false;  // grandchildren run untracked
      child_options.filter = [started, max = child_options.max_region_bytes](const MemoryRegion& region) {
        return *started && is_trackable(region) && region.size() <= max;
      };
      auto child = Tracker::create(c, std::move(context), child_options);
      if (!child) continue;  // the child exited already, or refused: it runs untracked
      *started = true;
      child->on_event([this](TrackerEvent&) { ++events; });
      children.push_back(Child{c, std::move(*child)});
    }
  }

  // Events of followed children (their threads block on remap/unmap until we read them).
  void child_events() {
    for (auto& c : children) (void)c.tracker.process_events();
  }

  // Adds followed children's writes to the interval's; drops children that exited.
  void scan_children(ScanResult& scan) {
    for (auto it = children.begin(); it != children.end();) {
      auto r = it->tracker.scan();
      if (!r) {
        (void)it->tracker.detach();
        it = children.erase(it);
        continue;
      }
      scan.written.insert(scan.written.end(), r->written.begin(), r->written.end());
      ++it;
    }
    normalize_ranges(scan.written);
    scan.written_pages = total_pages(scan.written);
  }

  // A thread's colour slot, given on first sight and kept for the run.
  std::uint8_t slot_of_thread(std::uint32_t tid) {
    return thread_slots.try_emplace(tid, static_cast<std::uint8_t>(thread_slots.size() % kMaxThreadSlots)).first->second;
  }

  // A single-threaded target: every written cell is its thread's, at the cell's density.
  ThreadActivity sole_thread_activity(std::uint32_t tid, const DensityMap& density) {
    ThreadActivity activity;
    activity.order = density.order;
    const std::size_t cells = density.cells.size();
    activity.slot.assign(cells, kNoThread);
    activity.rate.assign(cells, 0.0f);
    const std::uint8_t slot = slot_of_thread(tid);
    const float peak = density.cells.empty() ? 0.0f : *std::max_element(density.cells.begin(), density.cells.end());
    if (peak <= 0.0f) return activity;
    for (std::size_t i = 0; i < cells; ++i) {
      if (density.cells[i] <= 0.0f) continue;
      activity.slot[i] = slot;
      activity.rate[i] = density.cells[i] / peak;
    }
    return activity;
  }

  ThreadActivity thread_activity(const ThreadWrites& writes) {
    ThreadActivity activity;
    activity.order = layout.order();
    std::size_t cells = std::size_t{1} << (2 * activity.order);
    activity.slot.assign(cells, kNoThread);
    activity.rate.assign(cells, 0.0f);
    // Per cell, writes by the dominant thread; ties keep the first.
    std::vector<std::uint32_t> best(cells, 0);
    std::unordered_map<std::uint64_t, std::uint32_t> per_cell_thread;  // (cell << 8 | slot) -> count
    std::uint32_t max_count = 0;
    for (const auto& [tid, pages] : writes.by_thread) {
      const std::uint8_t slot = slot_of_thread(tid);
      for (VirtAddr page : pages) {
        auto cell = layout.cell_of(page);
        if (!cell) continue;
        std::size_t index = std::size_t{cell->y} * layout.side() + cell->x;
        std::uint32_t count = ++per_cell_thread[(std::uint64_t{index} << 8) | slot];
        if (count > best[index]) {
          best[index] = count;
          activity.slot[index] = slot;
        }
        max_count = std::max(max_count, count);
      }
    }
    if (max_count > 0) {
      for (std::size_t i = 0; i < cells; ++i) {
        if (best[i] > 0) activity.rate[i] = static_cast<float>(best[i]) / static_cast<float>(max_count);
      }
    }
    return activity;
  }
};

Monitor::Monitor(std::unique_ptr<State> state) : state_(std::move(state)) {}
Monitor::~Monitor() {
  if (state_) (void)detach();
}
Monitor::Monitor(Monitor&&) noexcept = default;
Monitor& Monitor::operator=(Monitor&&) noexcept = default;

namespace {

Result<std::unique_ptr<Monitor::State>> start_tracking(std::unique_ptr<Monitor::State> state, TargetUffds uffds) {
  const KernelSupport& k = kernel_support();
  if (uffds.fds.size() < 1) return fail(InvalidArgument{"no userfaultfd descriptor from the target"});
  auto async = Uffd::open(std::move(uffds.fds[0]), async_features(k, state->options.follow_forks));
  if (!async) return std::unexpected(async.error());
  TrackerOptions tracker_options;
  tracker_options.follow_forks = state->options.follow_forks;
  auto tracker = Tracker::create(state->pid, std::move(*async), tracker_options);
  if (!tracker) return std::unexpected(tracker.error());
  state->tracker.emplace(std::move(*tracker));
  state->tracker->on_event([raw = state.get()](TrackerEvent& event) {
    ++raw->events;
    if (event.child) raw->pending_children.push_back(std::move(*event.child));
  });
  if (state->options.follow_forks) {
    if (auto now = Tracker::children_of(state->pid); now) state->known_children = *now;
  }
  // Synchronous write-protect in a context made with UFFD_USER_MODE_ONLY would make a write
  // the kernel does for the target (read(2) into a sampled page) fail with EFAULT: only sample
  // threads with full contexts.
  if (state->options.thread_sampling && uffds.fds.size() >= 2 && !uffds.user_mode_only &&
      k.has(UFFD_FEATURE_THREAD_ID)) {
    UffdFeatures sync;
    sync.thread_id = true;
    if (auto s = Uffd::open(std::move(uffds.fds[1]), sync); s) {
      if (auto enabled = state->tracker->enable_thread_sampling(std::move(*s), ThreadSamplerOptions{}); enabled) {
        state->thread_sampling = true;
      }
    }
  }
  if (auto r = state->refresh_layout(); !r) return std::unexpected(r.error());
  if (auto r = state->arm(0); !r) return std::unexpected(r.error());
  state->interval_start = Clock::now();
  return state;
}

Result<AddressLayout> make_layout(const MonitorOptions& options) {
  LayoutOptions layout_options;
  layout_options.order = options.order;
  return AddressLayout::create(layout_options);
}

}  // namespace

Result<Monitor> Monitor::launch(std::span<const std::string> argv, MonitorOptions options) {
  const KernelSupport& k = kernel_support();
  if (auto r = require_async_tracking(k); !r) return std::unexpected(r.error());
  auto layout = make_layout(options);
  if (!layout) return std::unexpected(layout.error());
  auto launched = launch_with_agent(argv, kDescriptors);
  if (!launched) return std::unexpected(launched.error());
  auto state = std::make_unique<State>(std::move(*layout));
  state->options = options;
  state->pid = launched->pid;
  state->how = fmt::format("launched {} as pid {} with the agent", argv.empty() ? "" : argv[0], launched->pid.value());
  TargetUffds uffds = std::move(launched->uffds);
  state->launched.emplace(std::move(*launched));
  auto started = start_tracking(std::move(state), std::move(uffds));
  if (!started) return std::unexpected(started.error());  // LaunchedTarget's destructor lets it run
  if (auto r = (*started)->launched->release(); !r) return std::unexpected(r.error());
  return Monitor(std::move(*started));
}

Result<Monitor> Monitor::attach(Pid pid, MonitorOptions options) {
  const KernelSupport& k = kernel_support();
  if (auto r = require_async_tracking(k); !r) return std::unexpected(r.error());
  auto layout = make_layout(options);
  if (!layout) return std::unexpected(layout.error());
  auto uffds = inject_userfaultfds(pid, kDescriptors);
  if (!uffds) return std::unexpected(uffds.error());
  auto state = std::make_unique<State>(std::move(*layout));
  state->options = options;
  state->pid = pid;
  state->how = fmt::format("attached to pid {} (target paused {:.1f} ms)", pid.value(),
                           std::chrono::duration<double, std::milli>(uffds->target_paused).count());
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid.value(), 0));
  if (pidfd >= 0) state->pidfd.reset(pidfd);
  auto started = start_tracking(std::move(state), std::move(*uffds));
  if (!started) return std::unexpected(started.error());
  return Monitor(std::move(*started));
}

Result<IntervalReport> Monitor::next(const volatile bool* stop) {
  State& s = *state_;
  if (!s.tracker) return fail(InvalidArgument{"the monitor is detached"});
  const auto deadline = s.interval_start + s.options.interval;
  while (Clock::now() < deadline) {
    if (stop != nullptr && *stop) break;
    if (s.poll_exit()) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    // One wait per interval when nothing happens: it ends early for a layout message, the
    // target's exit (its pidfd) or a signal (Ctrl-C). A signal landing just before the wait
    // is seen after at most `cap`. Followed children's events are read between waits on the
    // parent's: wait less then.
    const long long cap = s.children.empty() && s.pending_children.empty() ? 100 : 5;
    auto waited = s.tracker->wait_events(static_cast<int>(std::clamp<long long>(left, 0, cap)), s.exit_fd());
    if (waited) {
      s.adopt_children();
      s.child_events();
    }
    if (!waited) {
      if (s.poll_exit(kExitGraceMs)) break;
      return std::unexpected(waited.error());
    }
  }

  IntervalReport report;
  report.index = s.interval;
  const auto now = Clock::now();
  report.length = now - s.interval_start;
  s.interval_start = now;
  const double seconds = std::max(std::chrono::duration<double>(report.length).count(), 1e-6);

  // Full intervals re-arm everything they read, unless a sampled one follows (after a
  // calibration): then the scan only reads and the plan is armed from what it saw, so the
  // target does not fault on pages the plan does not read.
  const bool next_full =
      s.options.full || !s.controller || s.pause.paused() || s.controller->full_follows(s.interval);
  auto scan = s.tracker->scan(next_full);
  if (!scan) {
    // A target that exited mid-scan has no maps or pagemap left: report the interval as empty.
    if (s.poll_exit(kExitGraceMs)) {
      scan = ScanResult{};
    } else {
      return std::unexpected(scan.error());
    }
  }
  if (!s.children.empty()) s.scan_children(*scan);
  report.written = to_virt(scan->written);
  report.written_pages = scan->written_pages;
  report.armed_pages = scan->armed_pages;
  report.tracked_pages = scan->tracked_pages;
  if (!s.exited) {
    if (auto r = s.refresh_layout(); !r) return std::unexpected(r.error());
  }

  GlassTelemetry& t = report.telemetry;
  t.interval_ms = seconds * 1e3;
  t.fault_rate = static_cast<double>(scan->written_pages) / seconds;
  t.hilbert_order = s.layout.order();
  t.mode = s.options.full ? SamplingMode::kFull : SamplingMode::kSampled;

  if (s.layout.order() == 0) {
    report.density = DensityMap(kMinHilbertOrder);
  } else if (s.options.full || !s.controller) {
    CellCounts counts;
    s.layout.count_ranges(report.written, counts);
    report.density = s.layout.density(counts);
    t.pages_written_per_s = t.fault_rate;
    t.working_set_pages = scan->written_pages;
    t.sampling_rate = 1.0;
  } else {
    auto slots = to_slots(s.layout, scan->written);
    const WriteHistory::Rewrites rewrites =
        s.keeps_history() ? s.history.record(s.interval, slots, s.controller->unarmed_horizon(), s.last_armed_all)
                          : WriteHistory::Rewrites{};
    std::optional<CalibrationResult> calibration;
    // A window armed on the layout before a relayout covers other slots now: calibrate later.
    if ((s.armed_full || (!s.window.empty() && !s.relaid_out)) && !s.paused && s.controller->is_calibration(s.interval)) {
      report.calibration = true;
      auto calibrated =
          s.controller->calibrate(s.interval, slots, s.still_armed,
                                  s.armed_full ? full_plan(s.controller->grid()).ranges : s.window);
      if (!calibrated) return std::unexpected(calibrated.error());
      calibration = std::move(*calibrated);
    }
    if (calibration && calibration->whole) {
      report.density = std::move(calibration->full);
      t.pages_written_per_s = t.fault_rate;
      t.working_set_pages = scan->written_pages;
    } else if (s.relaid_out || s.paused) {
      // The plan this interval armed was made on the previous layout: draw what was seen. Or
      // sampling is paused: everything was armed, so what was seen is exact (drawn as --full
      // draws it).
      CellCounts counts;
      s.layout.count_ranges(report.written, counts);
      report.density = s.layout.density(counts);
      t.pages_written_per_s = t.fault_rate;
      t.working_set_pages = scan->written_pages;
    } else if (s.armed_full) {
      // Everything was armed (the plan covered every page): the exact map.
      Observation full = observe(s.controller->grid(), full_plan(s.controller->grid()).ranges, slots);
      report.density = exact_density(full);
      t.pages_written_per_s = t.fault_rate;
      t.working_set_pages = scan->written_pages;
    } else {
      // Observed: every page watched this interval (the plan, and the pages still armed from
      // before), not only the plan: its faults happen anyway, and a sweep is then seen whole.
      const std::vector<PageIndexRange> watched = scan->sampled ? to_slots(s.layout, scan->watched) : s.armed;
      Observation obs = observe(s.controller->grid(), watched, slots);
      auto stats = s.controller->reconstructor().reconstruct(obs, report.density);
      if (!stats) return std::unexpected(stats.error());
      t.pages_written_per_s = stats->estimated_written_pages / seconds;
      t.working_set_pages = static_cast<std::uint64_t>(stats->estimated_written_pages + 0.5);
      // A calibration window saw more than the plan would have: not a measure of the saving.
      if (s.last_kind == State::Kind::kSampled && !calibration)
        s.pause.note_sampled(static_cast<double>(scan->written_pages), stats->estimated_written_pages,
                             static_cast<double>(rewrites.before));
    }
    if (s.armed_full && s.last_kind == State::Kind::kFull) {
      // Sampling would spare every page written outside its plan when the rest is disarmed;
      // without that, only the pages written again before a calibration window or a new plan
      // would have armed them again (they would still be unarmed).
      const std::uint64_t spared = s.options.disarm_after_full ? scan->written_pages : rewrites.recent;
      s.pause.note_full(scan->written_pages, spared, s.controller->rate());
    }
    if (s.armed_full) s.last_armed_all = s.interval;
    // An interval after the layout was replaced compares with nothing (its slots moved).
    if (s.relaid_out) {
      s.last_kind = State::Kind::kNone;
    } else {
      s.last_kind = s.armed_full ? State::Kind::kFull : State::Kind::kSampled;
    }
    report.sampling_paused = s.paused;
    t.sampling_rate = s.paused ? 1.0 : s.controller->rate();
    if (const auto& last = s.controller->last(); last) {
      t.reconstruction_f1 = last->f1;
      t.reconstruction_error = last->normalized_error;
    }
  }

  if (s.thread_sampling) {
    if (const ThreadWrites* writes = s.tracker->last_thread_writes(); writes != nullptr) {
      if (writes->sole_writer) {
        t.active_threads = report.written_pages > 0 ? 1 : 0;
        if (report.density.order != 0) report.threads = s.sole_thread_activity(*writes->sole_writer, report.density);
      } else {
        t.active_threads = static_cast<std::uint32_t>(writes->active_threads());
        if (s.layout.order() != 0) report.threads = s.thread_activity(*writes);
      }
    }
  }

  if (report.density.order != 0) {
    auto avalanche = s.avalanche.update(report.density);
    auto phase = s.phase.update(report.density);
    t.memory_avalanche_detected = avalanche.detected;
    t.phase_transition_detected = phase.detected;
    report.avalanche_mask = std::move(avalanche.mask);
    report.phase_mask = std::move(phase.mask);
  }
  t.events = s.events;

  ++s.interval;
  if (!s.exited) {
    if (auto r = s.arm(s.interval); !r) {
      if (!s.poll_exit(kExitGraceMs)) return std::unexpected(r.error());
    }
  }
  return report;
}

bool Monitor::target_exited() const {
  return state_->poll_exit();
}
bool Monitor::wait_exit(std::chrono::milliseconds timeout) const {
  return state_->poll_exit(static_cast<int>(timeout.count()));
}
std::optional<int> Monitor::exit_status() const { return state_->exit_status; }
Pid Monitor::pid() const { return state_->pid; }
const AddressLayout& Monitor::layout() const { return state_->layout; }
bool Monitor::thread_sampling() const { return state_->thread_sampling; }
const std::string& Monitor::how() const { return state_->how; }

Result<void> Monitor::detach() {
  if (!state_ || !state_->tracker) return {};
  for (auto& c : state_->children) (void)c.tracker.detach();  // a child may be gone already
  state_->children.clear();
  state_->pending_children.clear();
  auto result = state_->tracker->detach();
  state_->tracker.reset();
  return result;
}

Result<int> Monitor::wait_target() {
  if (!state_->launched) return fail(InvalidArgument{"only a launched target can be waited for"});
  if (state_->exit_status) return *state_->exit_status;
  auto status = state_->launched->wait();
  if (status) state_->exit_status = *status;
  return status;
}

Result<void> Monitor::signal_target(int signal) {
  if (!state_->launched || !state_->launched->pidfd)
    return fail(InvalidArgument{"only a target glass started can be signalled by it"});
  if (::syscall(SYS_pidfd_send_signal, state_->launched->pidfd.get(), signal, nullptr, 0) != 0) {
    if (errno == ESRCH) return {};  // it has exited already
    return fail(SystemCallFailed{fmt::format("pidfd_send_signal({}) to pid {}", signal, state_->pid.value()), errno, ""});
  }
  return {};
}

}  // namespace haywire::glass
