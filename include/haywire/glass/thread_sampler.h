// Per-thread attribution of writes on a few sampled pages: which thread wrote where.
//
// The async context that does bulk tracking never tells us who wrote. A second context, created
// inside the target with UFFD_FEATURE_THREAD_ID and used synchronously, does: a write to a page
// it protects blocks the writing thread and sends us a message carrying its TID. That costs the
// thread a round trip to the monitor (tens of µs), so only a capped handful of pages per interval
// are watched this way, and each page is released at its first write.
//
// How pages are carved out: a mapping (VMA) belongs to one userfaultfd context only, so each
// sampled page is unregistered from the async context (the kernel splits the VMA around it) and
// registered with the sync one. Moving a page costs four calls and two VMA changes under the
// target's mmap write lock, so carved pages stay carved from interval to interval: a page
// written in the last interval is just protected again (one call); a page idle for
// `idle_intervals`, or carved for `max_carved_intervals` (so that the sample moves on), goes
// back to the async context, armed, and registering it there lets the kernel merge the VMAs
// again. At most `max_moves_per_interval` pages move each way per interval, new ones spread
// evenly over the candidates. Extra VMAs at any moment: at most 2 per carved page, bounded by max_pages.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/types.h"
#include "haywire/glass/pagemap_scan.h"
#include "haywire/glass/uffd.h"

namespace haywire::glass {

struct ThreadSamplerOptions {
  // Each carved page written in an interval blocks its writer once for a round trip to the
  // monitor (~45 µs measured here): 16 of them cost a write-everywhere target ~0.7 %.
  std::size_t max_pages = 16;               // carved out at any time
  std::size_t max_moves_per_interval = 8;   // pages carved, and pages returned, per interval
  std::uint32_t idle_intervals = 2;         // intervals without a write before a page goes back
  std::uint32_t max_carved_intervals = 10;  // a page goes back after this many even if written
};

// What the sampler saw during one interval.
struct ThreadWrites {
  // TID → pages (page-aligned addresses) it wrote first, in fault order.
  std::unordered_map<std::uint32_t, std::vector<VirtAddr>> by_thread;
  std::uint64_t faults = 0;
  std::uint64_t sampled_pages = 0;  // pages watched in the interval
  // Set when the target had one thread when the interval began and when it ended: that thread
  // (TID == PID) wrote every page of the interval, and no page needed carving to tell.
  std::optional<std::uint32_t> sole_writer;
  [[nodiscard]] std::size_t active_threads() const { return by_thread.size(); }
};

class ThreadSampler {
 public:
  // `sync_uffd` must be opened with thread_id and without wp_async. Starts the fault thread.
  static Result<std::unique_ptr<ThreadSampler>> start(Uffd sync_uffd, const ThreadSamplerOptions& options);
  ~ThreadSampler();
  ThreadSampler(const ThreadSampler&) = delete;
  ThreadSampler& operator=(const ThreadSampler&) = delete;

  // Closes the interval: what the carved pages saw since begin_interval. The pages stay carved;
  // those written are protected again at once (a write from now on belongs to the next
  // interval); one that cannot be (its memory is gone) is dropped.
  ThreadWrites end_interval();
  // Opens the next interval: returns pages that are due (idle, or carved long enough) to
  // `async` (registered and armed there), and carves new pages from `candidates`
  // (page-aligned, registered with `async`) into the free places.
  // Pages that cannot move are skipped.
  Result<void> begin_interval(Uffd& async, const std::vector<VirtAddr>& candidates);
  // The pages currently carved out of the async context (normalized).
  [[nodiscard]] std::vector<PageRange> carved() const;
  [[nodiscard]] std::size_t max_pages() const { return options_.max_pages; }

  // Stops the fault thread after releasing everything still carved (returned to `async`,
  // armed). Called by the destructor without an async context (pages just unregistered).
  Result<void> stop(Uffd* async);

 private:
  ThreadSampler(Uffd sync_uffd, UniqueFd stop_event, const ThreadSamplerOptions& options);
  void run();

  Uffd sync_;
  UniqueFd stop_event_;  // eventfd that ends run()
  ThreadSamplerOptions options_;
  std::thread thread_;
  struct Carved {
    VirtAddr page;
    bool written = false;  // released by a fault since it was last protected
    std::uint32_t idle = 0;  // intervals in a row without a write
    std::uint32_t age = 0;   // intervals carved
  };
  // Where `page` is or would go in carved_ (sorted). Caller holds mutex_.
  std::vector<Carved>::iterator slot_of(VirtAddr page);
  // Returns `page` to `async` (armed there if `arm`): false when its memory is gone (nothing to
  // return), an error when the async context refuses it.
  Result<bool> give_back(Uffd& async, VirtAddr page, bool arm);

  mutable std::mutex mutex_;
  std::vector<Carved> carved_;  // guarded by mutex_, sorted by page
  ThreadWrites current_;        // guarded by mutex_
  bool stopped_ = false;
};

}  // namespace haywire::glass
