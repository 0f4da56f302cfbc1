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
// registered with the sync one. At the end of the interval it goes back, and registering it with
// the async context again lets the kernel merge the VMAs back. Extra VMAs at any moment: at most
// 2 per sampled page, bounded by max_pages_per_interval.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
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
  std::size_t max_pages_per_interval = 32;
};

// What the sampler saw during one interval.
struct ThreadWrites {
  // TID → pages (page-aligned addresses) it wrote first, in fault order.
  std::unordered_map<std::uint32_t, std::vector<VirtAddr>> by_thread;
  std::uint64_t faults = 0;
  std::uint64_t sampled_pages = 0;  // pages watched in the interval
  [[nodiscard]] std::size_t active_threads() const { return by_thread.size(); }
};

class ThreadSampler {
 public:
  // `sync_uffd` must be opened with thread_id and without wp_async. Starts the fault thread.
  static Result<std::unique_ptr<ThreadSampler>> start(Uffd sync_uffd, const ThreadSamplerOptions& options);
  ~ThreadSampler();
  ThreadSampler(const ThreadSampler&) = delete;
  ThreadSampler& operator=(const ThreadSampler&) = delete;

  // Moves up to max_pages_per_interval of `pages` (page-aligned, registered with `async`) to the
  // sync context and protects them. Pages that cannot move stay with `async` (skipped).
  Result<void> begin_interval(Uffd& async, const std::vector<VirtAddr>& pages);
  // Releases every sampled page (waking any thread blocked on one), returns it to `async` and,
  // if `rearm_async`, write-protects it there again. Returns the interval's writes.
  Result<ThreadWrites> end_interval(Uffd& async, bool rearm_async);
  // The pages currently carved out of the async context (normalized).
  [[nodiscard]] std::vector<PageRange> carved() const;
  [[nodiscard]] std::size_t max_pages() const { return options_.max_pages_per_interval; }

  // Stops the fault thread after releasing everything still carved (returned to `async`,
  // unarmed). Called by the destructor without an async context (pages just unregistered).
  Result<void> stop(Uffd* async);

 private:
  ThreadSampler(Uffd sync_uffd, UniqueFd stop_event, const ThreadSamplerOptions& options);
  void run();

  Uffd sync_;
  UniqueFd stop_event_;  // eventfd that ends run()
  ThreadSamplerOptions options_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<VirtAddr> carved_;  // guarded by mutex_
  ThreadWrites current_;          // guarded by mutex_
  bool stopped_ = false;
};

}  // namespace haywire::glass
