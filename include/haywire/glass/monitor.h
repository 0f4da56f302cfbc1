// The glass monitor: one tracked process, one interval at a time. Ties the parts together:
// attach (agent at launch, or ptrace injection) → Tracker (userfaultfd WP + PAGEMAP_SCAN) →
// AddressLayout (pages on the Hilbert grid) → full density, or sampled plan + reconstruction
// with calibration → detectors → telemetry. Rendering and output are the caller's (the CLI).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"
#include "haywire/glass/accuracy.h"
#include "haywire/glass/density.h"
#include "haywire/glass/layout.h"
#include "haywire/glass/render.h"
#include "haywire/glass/telemetry.h"

namespace haywire::glass {

struct MonitorOptions {
  std::chrono::milliseconds interval{100};
  bool full = false;              // arm every page every interval (else sampled + calibration)
  double sampling_rate = kDefaultSamplingRate;  // initial rate in sampled mode
  bool adaptive = true;           // adjust the rate from calibration accuracy
  bool adaptive_ranges = false;   // adjust the plan's range budget too (RangeBudgetConfig)
  // Every Nth interval calibrates (sampled mode); 0 never.
  std::uint64_t calibrate_every = CalibrationConfig{}.every;
  // While calibrations stay comfortable the gap doubles up to this (CalibrationConfig::
  // max_every); <= calibrate_every keeps the schedule fixed.
  std::uint64_t calibrate_max_every = 40;
  // The share of the pages a calibration arms and measures accuracy on (CalibrationConfig::
  // window_share); >= 1: every page (full calibration intervals).
  double calibration_window = CalibrationConfig{}.window_share;
  // Track in full while sampling saves the target few faults (SamplingPause, sampling.h).
  bool pause_sampling = true;
  // Sampled mode: after an interval that armed every page, un-protect all but the next plan
  // (Tracker::disarm) instead of leaving each page armed until its next write. The target
  // then faults on about the plan's share of its writes (`sort`: ~400,000 faults instead of
  // ~700,000), but every sampled read walks pages that are mostly unarmed, which costs the
  // monitor several times more (docs/PERFORMANCE.md section 7). `haywire glass --fewer-faults`.
  bool disarm_after_full = false;
  // Sampled mode: intervals a plan is held (CalibrationConfig::hold_intervals).
  std::uint64_t hold_intervals = CalibrationConfig{}.hold_intervals;
  unsigned order = 0;             // Hilbert order of the grid; 0 chooses from the tracked size
  bool thread_sampling = true;    // per-thread attribution (needs full userfaultfds)
  bool follow_forks = false;
};

// What one interval saw.
struct IntervalReport {
  std::uint64_t index = 0;
  std::chrono::nanoseconds length{0};
  bool calibration = false;              // sampled mode measured its accuracy (a window or all armed)
  bool sampling_paused = false;          // sampled mode tracked in full: sampling saved little
  std::vector<VirtRange> written;        // pages written among the armed ones (coalesced)
  std::uint64_t written_pages = 0;
  std::uint64_t armed_pages = 0;
  std::uint64_t tracked_pages = 0;
  DensityMap density;                    // full (exact) or reconstructed
  ThreadActivity threads;                // empty order 0 when no thread sampling
  std::vector<std::uint8_t> avalanche_mask;  // row-major, empty when not detected
  std::vector<std::uint8_t> phase_mask;
  GlassTelemetry telemetry;
};

class Monitor {
 public:
  // `haywire glass -- CMD ARGS`: starts argv with the agent, tracks it from before main().
  static Result<Monitor> launch(std::span<const std::string> argv, MonitorOptions options);
  // `haywire glass --pid PID`: injects userfaultfd creation into a running process.
  static Result<Monitor> attach(Pid pid, MonitorOptions options);

  ~Monitor();
  Monitor(Monitor&&) noexcept;
  Monitor& operator=(Monitor&&) noexcept;

  // Waits one interval (handling the target's layout events meanwhile) and reports it.
  // Returns early, with the partial interval, when the target exits or `stop` becomes true.
  Result<IntervalReport> next(const volatile bool* stop = nullptr);

  // The target has exited (its exit status if we launched it).
  [[nodiscard]] bool target_exited() const;
  // Waits up to `timeout` for the target to exit; whether it has.
  [[nodiscard]] bool wait_exit(std::chrono::milliseconds timeout) const;
  [[nodiscard]] std::optional<int> exit_status() const;
  [[nodiscard]] Pid pid() const;
  [[nodiscard]] const AddressLayout& layout() const;
  [[nodiscard]] bool thread_sampling() const;
  // What was done to start tracking, for the first status line ("launched with agent",
  // "injected into pid 1234 (target paused 3.1 ms)").
  [[nodiscard]] const std::string& how() const;

  // Unregisters every range, closes every descriptor; a launched target keeps running.
  Result<void> detach();
  // For a launched target after detach: waits for it to exit; its status.
  Result<int> wait_target();
  // Sends `signal` to a launched target (through its pidfd: never to a reused PID).
  // InvalidArgument for an attached one: that process is not ours to stop.
  Result<void> signal_target(int signal);

  struct State;  // opaque: defined in monitor.cc
  explicit Monitor(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

}  // namespace haywire::glass
