// Write tracking of one process: which pages it wrote since the last scan.
//
// The tracker write-protects the target's writable private mappings through an async userfaultfd
// context (UFFD_FEATURE_WP_ASYNC: the kernel resolves each first write itself and marks the page
// written, ~1 µs) and reads + re-arms the written set with one PAGEMAP_SCAN per range.
//
// Full mode arms every tracked page. Sampled mode arms only a given set of ranges and reports
// only those: arming is a PAGEMAP_SCAN re-protect per range, skipped for ranges the last scan
// saw fully armed. Its scans only read what they watched (a page-table walk, no TLB flush). Pages
// outside the set are not un-protected: an armed page costs nothing until its first write, which
// disarms it, so each page faults at most once per time it is armed. Each range re-protected
// while the target runs costs a TLB flush on the target's CPUs (~10 µs of its time here, in a
// VM): that, not the page count, is what a plan's range budget bounds.
//
// Threading: one thread drives a Tracker (scan, set_sampled, process_events, detach). The
// optional ThreadSampler runs its own fault-reading thread internally.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"
#include "haywire/glass/maps.h"
#include "haywire/glass/pagemap_scan.h"
#include "haywire/glass/thread_sampler.h"
#include "haywire/glass/uffd.h"

namespace haywire::glass {

struct TrackerOptions {
  // Regions larger than this are not tracked: arming never-touched memory allocates page tables
  // for it (WP_UNPOPULATED), which for a huge reservation (sanitizer shadow, JIT heaps) is too much.
  std::uint64_t max_region_bytes = std::uint64_t{64} << 30;
  // Replaces the default choice (is_trackable(region) && size <= max_region_bytes) if set.
  std::function<bool(const MemoryRegion&)> filter;
  // On a fork message (needs the async context opened with event_fork), hand the child's context
  // to the event callback; when false, or when the callback leaves it, it is closed at once and
  // the child runs untracked.
  bool follow_forks = false;
  // A scan re-reads /proc/PID/maps when the layout's size counters (/proc/PID/statm) moved, a
  // layout message arrived or a call found memory no longer registered, and at least every
  // `maps_every` scans whatever they say (an mprotect that swaps the writability of two
  // regions of the same size moves no counter). 1: every scan.
  unsigned maps_every = 10;
};

// A layout event from the target, already applied to the tracker's bookkeeping.
struct TrackerEvent {
  UffdMessage::Type type = UffdMessage::Type::kUnmap;
  VirtAddr address;          // remap: old start; remove/unmap: start
  VirtAddr end;              // remove/unmap: end
  VirtAddr new_address;      // remap: new start
  std::uint64_t length = 0;  // remap
  // Fork with follow_forks: the child's async context (handshake done). Move it out to keep it
  // (Tracker::create_for_child); otherwise it is closed after the callback returns.
  std::optional<Uffd> child;
};

struct ScanResult {
  std::vector<PageRange> written;    // sorted, coalesced, page-aligned
  std::uint64_t written_pages = 0;
  std::uint64_t tracked_pages = 0;   // registered
  std::uint64_t armed_pages = 0;     // watched this interval (== tracked in full mode)
  // Pages whose entries the scan read (cost telemetry): every tracked page in full mode; in
  // sampled mode the watched ones and the short gaps between them.
  std::uint64_t walked_pages = 0;
  // Sampled mode: the pages watched this interval (armed when it began), sorted, coalesced;
  // `written` lies within them. Empty in full mode (every tracked page was watched).
  std::vector<PageRange> watched;
  bool sampled = false;
  unsigned regions_added = 0;        // by this scan's layout refresh
  unsigned regions_removed = 0;
  bool layout_changed = false;
  bool maps_read = false;            // this scan re-read /proc/PID/maps
  std::uint64_t ioctls = 0;          // kernel calls this scan made (cost telemetry)
};

class Tracker {
 public:
  using EventCallback = std::function<void(TrackerEvent&)>;

  // Reads the layout, registers and arms every chosen region. `async_uffd` must be a context
  // created inside `pid` and opened with wp_async.
  static Result<Tracker> create(Pid pid, Uffd async_uffd, TrackerOptions options = {});
  ~Tracker();
  Tracker(Tracker&&) noexcept;
  Tracker& operator=(Tracker&&) noexcept;

  // Pages written since the interval began, and the start of the next one. Re-reads
  // /proc/PID/maps first so regions that appeared are tracked from now on and vanished ones are
  // forgotten.
  // Full mode: pages written since the previous scan (or create / set_full), re-armed in the
  // same pass. With rearm = false (the caller calls set_sampled next) it only reads.
  // Sampled mode: pages written since set_sampled among those armed then: the plan's, and
  // every other page still armed from before (armed by an earlier plan or a full interval and
  // not written since, as the previous scan read). Nothing is re-armed (the next set_sampled
  // arms the next plan where this scan saw pages not armed), so call set_sampled after each
  // scan, as the monitor does.
  Result<ScanResult> scan(bool rearm = true);
  // Arms `ranges` (clipped to what is tracked) and watches them, with whatever else is known to
  // be armed, from now on. Cost: one PAGEMAP_SCAN per range that holds pages not armed.
  Result<void> set_sampled(std::vector<PageRange> ranges);
  // Arms everything again: after a sampled scan or a full scan(false), what that scan left
  // unarmed; after a full scan that re-armed, nothing.
  Result<void> set_full();
  // Un-protects every tracked page (carved pages aside), one call per tracked range, so that
  // nothing is armed until the next set_sampled arms its plan (and watches only that). For
  // after an interval that armed everything: left armed, each page outside the plan would
  // cost the target a fault at its next write, which nobody reads.
  Result<void> disarm();
  [[nodiscard]] bool sampled() const { return sampled_; }
  // After a scan that read (sampled, or full with rearm = false) and before the next
  // set_sampled / set_full: the tracked pages that scan saw armed (normalized, carved pages
  // left out). A full scan looks at every tracked page; a sampled one only at what it watched
  // and short gaps between, so pages armed elsewhere are not among them. nullopt when not known.
  [[nodiscard]] std::optional<std::vector<PageRange>> known_armed() const;
  // What the last set_sampled did: the plan's ranges, how many it re-protected, and whether
  // that choice came from a scan's reading (else every range was re-protected blindly).
  struct Arming {
    std::size_t ranges = 0;
    std::size_t rearmed = 0;
    bool informed = false;
  };
  [[nodiscard]] const Arming& last_arming() const { return last_arming_; }

  // Reads every pending layout message without blocking and hands each to the callback. The
  // target thread that caused a message is blocked until it is read, so call this often (or
  // wait_events in the monitor loop).
  Result<std::size_t> process_events();
  // Waits up to timeout_ms for a message (or for `also_fd` to be readable, or a signal), then
  // processes what is pending.
  Result<std::size_t> wait_events(int timeout_ms, int also_fd = -1);
  void on_event(EventCallback callback) { callback_ = std::move(callback); }
  [[nodiscard]] int event_fd() const { return uffd_.fd(); }

  // Per-thread attribution on a few sampled pages per interval, through a second, synchronous
  // context created inside the target (see thread_sampler.h). Each scan() ends one sampling
  // interval and starts the next, choosing pages among the ones just written. While the target
  // has a single thread nothing is carved (its pages go back as they fall due): that thread
  // wrote everything, and ThreadWrites::sole_writer says so.
  Result<void> enable_thread_sampling(Uffd sync_uffd, const ThreadSamplerOptions& options);
  // Writes seen by the thread sampler in the interval the last scan() closed.
  [[nodiscard]] const ThreadWrites* last_thread_writes() const;

  // Unregisters everything this tracker registered (write faults stop; no state left in the
  // target's mappings) and closes the descriptors. Safe to call twice; the destructor calls it.
  Result<void> detach();

  [[nodiscard]] Pid pid() const { return pid_; }
  [[nodiscard]] const std::vector<PageRange>& tracked() const { return registered_; }
  [[nodiscard]] const std::vector<MemoryRegion>& regions() const { return regions_; }
  // Regions chosen but refused by the kernel (e.g. VM_PFNMAP) at the last refresh.
  [[nodiscard]] unsigned skipped_regions() const { return skipped_; }

  // Children of pid (from /proc/PID/task/*/children): how a fork's child is found, since the
  // fork message carries only the child's context.
  static Result<std::vector<Pid>> children_of(Pid pid);

 private:
  Tracker(Pid pid, Uffd uffd, PagemapScanner scanner, TrackerOptions options);
  struct Refresh {
    unsigned added = 0;
    unsigned removed = 0;
  };
  Result<Refresh> refresh_layout(bool force_register);
  // refresh_layout(false) if the layout may have changed since the last one (see maps_every).
  Result<Refresh> refresh_layout_if_changed(bool& read);
  Result<void> protect(const std::vector<PageRange>& ranges, bool enable);
  // Re-protects the written pages of `ranges` (PAGEMAP_SCAN, no output).
  Result<void> rearm(const std::vector<PageRange>& ranges);
  std::vector<PageRange> excluded() const;  // carved out for the thread sampler
  void apply(const UffdMessage& message);

  Pid pid_;
  Uffd uffd_;
  PagemapScanner scanner_;
  TrackerOptions options_;
  EventCallback callback_;
  std::vector<MemoryRegion> regions_;
  std::vector<PageRange> registered_;       // normalized
  std::vector<PageRange> ever_registered_;  // normalized; what detach undoes
  std::vector<PageRange> armed_;            // sampled mode only: the plan
  // Sampled mode: what is known to be armed at the interval's start (the plan, and pages no
  // scan has seen written since they were armed), minus carved pages.
  std::vector<PageRange> watched_;
  std::vector<PageRange> rearmed_;          // armed by the last scan (or create): the interval's start
  // What the last reading scan walked (sampled: the watched ranges bridged across short gaps;
  // full: every tracked page), and which of those pages were not armed then (written since
  // last armed, or never armed); valid until the next set_sampled / set_full or layout event.
  std::vector<PageRange> walked_;
  std::vector<PageRange> unarmed_;
  bool unarmed_known_ = false;
  Arming last_arming_;
  bool sampled_ = false;
  bool detached_ = false;
  unsigned skipped_ = 0;
  // What the last maps read saw of /proc/PID/statm (read just before it); cleared when
  // something since says the layout changed anyway (the next scan then reads the maps).
  std::optional<VmSizes> sizes_at_read_;
  unsigned scans_since_read_ = 0;  // scans since the last maps read
  std::uint64_t ioctls_ = 0;
  std::unique_ptr<ThreadSampler> sampler_;
  ThreadWrites last_thread_writes_;
  std::uint32_t threads_at_last_scan_ = 0;  // 0: not known
  // Memory that appeared after create() is registered at the next scan; what the target wrote
  // there before that is collected at registration and reported by that scan.
  bool created_ = false;
  std::vector<PageRange> written_before_;
};

}  // namespace haywire::glass
