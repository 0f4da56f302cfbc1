// A userfaultfd context of a target process, driven from the monitor. The descriptor must have
// been created inside the target (so it refers to the target's memory); this wrapper does the
// rest: the one-time UFFDIO_API handshake, write-protect registration, protect/unprotect and
// reading messages. Every call is safe from the monitor: the kernel applies them to the mm the
// context was created in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/types.h"

namespace haywire::glass {

// Features a context is opened with. They all combine in one UFFDIO_API call (the kernel only
// rejects ones it lacks; EVENT_FORK also needs CAP_SYS_PTRACE in the caller). wp_async implies
// wp_unpopulated (the kernel turns it on). For the two contexts glass uses:
//   async (bulk tracking): wp_async + wp_unpopulated [+ events]; write faults never reach us.
//   sync (thread sampler): thread_id [+ events]; every write fault on it is a message.
struct UffdFeatures {
  bool wp_async = false;        // UFFD_FEATURE_WP_ASYNC (6.7)
  bool wp_unpopulated = false;  // UFFD_FEATURE_WP_UNPOPULATED (6.4): never-touched pages tracked too
  bool thread_id = false;       // UFFD_FEATURE_THREAD_ID (4.14): faulting thread's TID in messages
  bool event_fork = false;      // UFFD_FEATURE_EVENT_FORK: child gets its own context (else untracked)
  bool event_remap = false;     // UFFD_FEATURE_EVENT_REMAP: mremap keeps the registration, tells us
  bool event_remove = false;    // UFFD_FEATURE_EVENT_REMOVE: madvise(DONTNEED/REMOVE)
  bool event_unmap = false;     // UFFD_FEATURE_EVENT_UNMAP: munmap

  [[nodiscard]] bool any_event() const { return event_fork || event_remap || event_remove || event_unmap; }
  [[nodiscard]] std::string describe() const;  // "wp_async,wp_unpopulated"
  bool operator==(const UffdFeatures&) const = default;
};

// Features this kernel offers (a throwaway context of our own, UFFDIO_API with none requested).
Result<UffdFeatures> probe_uffd_features();

// A message read from a context. Non-cooperative events (all but kPageFault) block the target
// thread that caused them until the message is read.
struct UffdMessage {
  enum class Type { kPageFault, kFork, kRemap, kRemove, kUnmap };
  Type type = Type::kPageFault;
  VirtAddr address;          // page fault: faulting address; remap: old start; remove/unmap: start
  VirtAddr end;              // remove/unmap: end of the range
  VirtAddr new_address;      // remap: new start
  std::uint64_t length = 0;  // remap: length
  bool write = false;        // page fault: a write
  bool wp = false;           // page fault: a write-protect fault
  std::uint32_t thread_id = 0;  // page fault with thread_id feature
  UniqueFd child_uffd;       // fork: the child's context, already initialised, now ours
};
[[nodiscard]] std::string_view to_string(UffdMessage::Type type);

class Uffd {
 public:
  // Takes a descriptor that no one has called UFFDIO_API on yet, and does so with `want`.
  // Unsupported (with what the kernel offers) if a feature is missing; the descriptor is then
  // used up (UFFDIO_API works once per descriptor), so probe first to pick a fallback.
  static Result<Uffd> open(UniqueFd fd, const UffdFeatures& want);
  // A descriptor whose handshake was already done (the child context from a fork message).
  static Uffd adopt(UniqueFd fd, const UffdFeatures& features);
  // userfaultfd(2) in this process (tests, benchmarks, probing): user-mode faults only.
  static Result<UniqueFd> create_raw();

  Uffd(Uffd&&) noexcept = default;
  Uffd& operator=(Uffd&&) noexcept = default;

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const UffdFeatures& features() const { return features_; }

  // UFFDIO_REGISTER in write-protect mode. The range must be page-aligned and covered by VMAs;
  // registering does not protect anything yet.
  Result<void> register_wp(VirtAddr start, std::uint64_t length);
  Result<void> unregister(VirtAddr start, std::uint64_t length);
  // UFFDIO_WRITEPROTECT: enable arms (write-protects) the range, disable un-protects it and
  // wakes threads blocked on it (unless dont_wake).
  Result<void> write_protect(VirtAddr start, std::uint64_t length, bool enable, bool dont_wake = false);

  // Non-blocking: nullopt when nothing is pending.
  Result<std::optional<UffdMessage>> read_message();
  // Waits up to timeout_ms (-1: forever) until the descriptor is readable (true), or until
  // `also_fd` (when >= 0) is, or a signal arrives (false: the caller looks at why).
  Result<bool> wait_readable(int timeout_ms, int also_fd = -1) const;

 private:
  Uffd(UniqueFd fd, const UffdFeatures& features) : fd_(std::move(fd)), features_(features) {}
  UniqueFd fd_;
  UffdFeatures features_;
};

}  // namespace haywire::glass
