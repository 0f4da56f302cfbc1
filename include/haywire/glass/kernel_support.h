// What the running kernel offers for write tracking, probed once in our own process, and the
// checks that turn a missing piece into an Error a person can act on (minimum version, sysctl,
// fallback). Also the process lookup every attach starts with.
#pragma once

#include <cstdint>
#include <string>

#include "haywire/base/error.h"
#include "haywire/base/types.h"

namespace haywire::glass {

struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  std::string release;  // uname -r, e.g. "6.18.44-fc-v657"
  friend auto operator<=>(const KernelVersion& a, const KernelVersion& b) {
    if (a.major != b.major) return a.major <=> b.major;
    if (a.minor != b.minor) return a.minor <=> b.minor;
    return a.patch <=> b.patch;
  }
  friend bool operator==(const KernelVersion& a, const KernelVersion& b) {
    return (a <=> b) == 0;
  }
};

// "6.18.44-fc-v657" -> {6, 18, 44}. ParseError for text without at least "major.minor".
Result<KernelVersion> parse_kernel_release(std::string_view release);

struct KernelSupport {
  KernelVersion version;
  // userfaultfd(2) exists (not ENOSYS: CONFIG_USERFAULTFD).
  bool userfaultfd = false;
  int userfaultfd_errno = 0;  // why neither flavour below could be created, 0 if one could
  // vm.unprivileged_userfaultfd (-1 when the sysctl is absent).
  int unprivileged_sysctl = -1;
  // Which flavours this process can create: full (kernel-mode faults too; needs
  // CAP_SYS_PTRACE or the sysctl) and UFFD_USER_MODE_ONLY (5.11+, no privilege needed).
  bool full_mode = false;
  bool user_mode_only = false;
  // uffdio_api.features / .ioctls reported by UFFDIO_API on a scratch descriptor.
  std::uint64_t features = 0;
  std::uint64_t ioctls = 0;
  // PAGEMAP_SCAN (6.7+) answered on /proc/self/pagemap.
  bool pagemap_scan = false;
  // pidfd_open (5.3+) and pidfd_getfd (5.6+), needed to take descriptors out of a target.
  bool pidfd_getfd = false;
  // UFFD_FEATURE_EVENT_FORK is refused (EPERM) to a monitor without CAP_SYS_PTRACE.
  bool cap_sys_ptrace = false;

  [[nodiscard]] bool has(std::uint64_t feature_bits) const {
    return (features & feature_bits) == feature_bits;
  }
};

// Probes now (creates and closes scratch descriptors). Never fails: what is missing shows as
// false/0 and the require_* checks below explain it.
KernelSupport probe_kernel_support();
// probe_kernel_support() once per process, cached (thread-safe).
const KernelSupport& kernel_support();

// Each check returns Unsupported{feature, detected, hint} (minimum kernel, sysctl, fallback)
// or PermissionDenied/SystemCallFailed with what to do.
// userfaultfd can be created here at all (either flavour).
Result<void> require_userfaultfd(const KernelSupport& k);
// Write-protect mode (5.7+, UFFD_FEATURE_PAGEFAULT_FLAG_WP).
Result<void> require_write_protect(const KernelSupport& k);
// Async write-protect + PAGEMAP_SCAN (6.7+): what glass tracks with. There is no fallback
// (synchronous write-protect would stop the writer on every first write): the hint says which
// kernel to install.
Result<void> require_async_tracking(const KernelSupport& k);
// UFFD_FEATURE_THREAD_ID (4.14+) for per-thread attribution in sync mode.
Result<void> require_thread_id(const KernelSupport& k);
// pidfd_open + pidfd_getfd (5.6+): needed by both attach paths.
Result<void> require_pidfd_getfd(const KernelSupport& k);

struct ProcessInfo {
  Pid pid;
  std::string name;  // comm
  char state = '?';  // from /proc/PID/stat
  int threads = 0;
  int tracer_pid = 0;  // non-zero: someone (a debugger) already traces it
  int seccomp = 0;     // 0 none, 1 strict, 2 filter (/proc/PID/status Seccomp:)
};
// The process exists, is not a zombie, is a process (not a thread) id, and we may trace it:
// NotFound{"process N not found", hint}; PermissionDenied whose text names CAP_SYS_PTRACE/root
// and /proc/sys/kernel/yama/ptrace_scope; AlreadyExists when a debugger already traces it;
// InvalidArgument for a thread id or PID <= 0.
Result<ProcessInfo> lookup_process(Pid pid);

// "process N (needs root or CAP_SYS_PTRACE ...; here: ptrace_scope=1)": the PermissionDenied
// text for a process we may not trace.
std::string process_permission_text(Pid pid);

}  // namespace haywire::glass
