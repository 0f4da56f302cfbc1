#include "haywire/glass/kernel_support.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>

#include "glass/uapi.h"
#include "haywire/base/fd.h"
#include "haywire/base/parse.h"

namespace haywire::glass {
namespace {

constexpr int kUffdBaseFlags = O_CLOEXEC | O_NONBLOCK;

std::string version_text(const KernelSupport& k) {
  return fmt::format("kernel {}", k.version.release.empty() ? "?" : k.version.release);
}

// Capabilities from /proc/self/status (no libcap dependency).
bool have_capability(int cap) {
  auto status = read_text_file("/proc/self/status");
  if (!status) return false;
  auto pos = status->find("\nCapEff:");
  if (pos == std::string::npos) return false;
  auto line = std::string_view(*status).substr(pos + 8);
  line = line.substr(0, line.find('\n'));
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  auto bits = parse_hex(line);
  return bits && ((*bits >> cap) & 1U) != 0;
}

void probe_features(KernelSupport& k, int fd) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = 0;  // 0 asks for the handshake only; the kernel reports everything it has
  if (ioctl(fd, UFFDIO_API, &api) == 0) {
    k.features = api.features;
    k.ioctls = api.ioctls;
  }
}

bool probe_pagemap_scan() {
  UniqueFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  // An empty range: a kernel with the ioctl validates and returns 0; one without says ENOTTY.
  pm_scan_arg arg{};
  arg.size = sizeof(arg);
  arg.return_mask = PAGE_IS_WRITTEN;
  return ioctl(fd.get(), PAGEMAP_SCAN, &arg) >= 0 || (errno != ENOTTY && errno != EINVAL);
}

bool probe_pidfd_getfd() {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!pidfd) return false;
  // Duplicate our own stdin-or-whatever descriptor 0..2 if any exists; EBADF still proves the
  // syscall is there, ENOSYS does not.
  long fd = syscall(SYS_pidfd_getfd, pidfd.get(), pidfd.get(), 0);
  if (fd >= 0) {
    close(static_cast<int>(fd));
    return true;
  }
  return errno != ENOSYS;
}

}  // namespace

Result<KernelVersion> parse_kernel_release(std::string_view release) {
  KernelVersion v;
  v.release = std::string(release);
  int* parts[] = {&v.major, &v.minor, &v.patch};
  std::size_t i = 0;
  int found = 0;
  for (int* part : parts) {
    std::size_t start = i;
    long value = 0;
    while (i < release.size() && release[i] >= '0' && release[i] <= '9' && i - start < 6) {
      value = value * 10 + (release[i] - '0');
      ++i;
    }
    if (i == start) break;
    *part = static_cast<int>(value);
    ++found;
    if (i >= release.size() || release[i] != '.') break;
    ++i;
  }
  if (found < 2) {
    return fail(ParseError{"kernel release", fmt::format("'{}' is not major.minor[.patch]", release)});
  }
  return v;
}

KernelSupport probe_kernel_support() {
  KernelSupport k;
  utsname u{};
  if (uname(&u) == 0) {
    if (auto v = parse_kernel_release(u.release)) k.version = *v;
    else k.version.release = u.release;
  }
  if (auto text = read_text_file("/proc/sys/vm/unprivileged_userfaultfd")) {
    if (auto value = parse_u64(std::string_view(*text).substr(0, text->find('\n')))) {
      k.unprivileged_sysctl = static_cast<int>(*value);
    }
  }
  k.cap_sys_ptrace = have_capability(CAP_SYS_PTRACE);

  long full = syscall(SYS_userfaultfd, kUffdBaseFlags);
  int full_errno = full < 0 ? errno : 0;
  long user_only = syscall(SYS_userfaultfd, kUffdBaseFlags | UFFD_USER_MODE_ONLY);
  int user_errno = user_only < 0 ? errno : 0;
  k.full_mode = full >= 0;
  k.user_mode_only = user_only >= 0;
  k.userfaultfd = k.full_mode || k.user_mode_only || (full_errno != ENOSYS);
  if (!k.full_mode && !k.user_mode_only) k.userfaultfd_errno = user_errno ? user_errno : full_errno;
  if (full >= 0) probe_features(k, static_cast<int>(full));
  else if (user_only >= 0) probe_features(k, static_cast<int>(user_only));
  if (full >= 0) close(static_cast<int>(full));
  if (user_only >= 0) close(static_cast<int>(user_only));

  k.pagemap_scan = probe_pagemap_scan();
  k.pidfd_getfd = probe_pidfd_getfd();
  return k;
}

const KernelSupport& kernel_support() {
  static const KernelSupport probed = probe_kernel_support();
  return probed;
}

Result<void> require_userfaultfd(const KernelSupport& k) {
  if (k.full_mode || k.user_mode_only) return {};
  if (!k.userfaultfd) {
    return fail(Unsupported{"userfaultfd(2)", version_text(k),
                            "the kernel was built without CONFIG_USERFAULTFD (needs 4.3+); "
                            "no write tracking is possible on this kernel"});
  }
  if (k.userfaultfd_errno == EPERM || k.userfaultfd_errno == EACCES) {
    return fail(SystemCallFailed{
        "userfaultfd(O_CLOEXEC|O_NONBLOCK[|UFFD_USER_MODE_ONLY])", k.userfaultfd_errno,
        "run as root or with CAP_SYS_PTRACE, or allow it for everyone with "
        "'sysctl vm.unprivileged_userfaultfd=1' (UFFD_USER_MODE_ONLY needs kernel 5.11+)"});
  }
  return fail(SystemCallFailed{"userfaultfd(O_CLOEXEC|O_NONBLOCK)", k.userfaultfd_errno,
                               "check seccomp/LSM policy for this process"});
}

Result<void> require_write_protect(const KernelSupport& k) {
  if (auto ok = require_userfaultfd(k); !ok) return ok;
  if (!k.has(UFFD_FEATURE_PAGEFAULT_FLAG_WP) || (k.ioctls & (1ULL << _UFFDIO_REGISTER)) == 0) {
    return fail(Unsupported{"userfaultfd write-protect (UFFD_FEATURE_PAGEFAULT_FLAG_WP)",
                            version_text(k),
                            "needs Linux 5.7+ (anonymous memory); no write tracking fallback "
                            "exists on older kernels"});
  }
  return {};
}

Result<void> require_async_tracking(const KernelSupport& k) {
  if (auto ok = require_write_protect(k); !ok) return ok;
  // Synchronous write-protect would work on older kernels, but stopping the writer on every
  // first write is not a tool to point at a running process: say what to upgrade to instead.
  constexpr std::string_view kFallback =
      "haywire glass has no tracking without it (Debian 12: install a newer kernel from "
      "bookworm-backports, e.g. linux-image-amd64/bookworm-backports, and reboot)";
  if (!k.has(UFFD_FEATURE_WP_ASYNC)) {
    return fail(Unsupported{"userfaultfd UFFD_FEATURE_WP_ASYNC", version_text(k),
                            fmt::format("needs Linux 6.7+ (with PAGEMAP_SCAN); {}", kFallback)});
  }
  if (!k.pagemap_scan) {
    return fail(Unsupported{"PAGEMAP_SCAN ioctl on /proc/PID/pagemap", version_text(k),
                            fmt::format("needs Linux 6.7+; {}", kFallback)});
  }
  return {};
}

Result<void> require_thread_id(const KernelSupport& k) {
  if (auto ok = require_write_protect(k); !ok) return ok;
  if (!k.has(UFFD_FEATURE_THREAD_ID)) {
    return fail(Unsupported{"userfaultfd UFFD_FEATURE_THREAD_ID", version_text(k),
                            "needs Linux 4.14+; writes are still counted, without the thread"});
  }
  return {};
}

Result<void> require_pidfd_getfd(const KernelSupport& k) {
  if (!k.pidfd_getfd) {
    return fail(Unsupported{"pidfd_open/pidfd_getfd", version_text(k),
                            "needs Linux 5.6+ to take a descriptor out of a running process (--pid); "
                            "fallback: start the program under 'haywire glass -- CMD', whose "
                            "agent hands the descriptors over a socket"});
  }
  return {};
}

namespace {

constexpr std::string_view kPtraceHint =
    "tracing another user's process needs root or CAP_SYS_PTRACE; with Yama, "
    "/proc/sys/kernel/yama/ptrace_scope must be 0 (or 1 with CAP_SYS_PTRACE, 2 needs "
    "CAP_SYS_PTRACE, 3 forbids it until reboot)";

std::string ptrace_scope_text() {
  auto text = read_text_file("/proc/sys/kernel/yama/ptrace_scope");
  if (!text) return "no Yama";
  return fmt::format("ptrace_scope={}", std::string_view(*text).substr(0, text->find('\n')));
}

}  // namespace

std::string process_permission_text(Pid pid) {
  return fmt::format("process {} ({}; here: {})", pid.value(), kPtraceHint, ptrace_scope_text());
}

Result<ProcessInfo> lookup_process(Pid pid) {
  if (pid.value() <= 0) return fail(InvalidArgument{fmt::format("invalid PID {}", pid.value())});
  const std::string dir = fmt::format("/proc/{}", pid.value());
  auto not_found = [&] {
    return fail(NotFound{fmt::format("process {} not found", pid.value()),
                         "check the PID with 'ps -e' or pgrep; it may have exited, or live in "
                         "another PID namespace"});
  };
  auto status = read_text_file(dir + "/status");
  if (!status) {
    if (status.error().is<FileNotFound>()) return not_found();
    return std::unexpected(std::move(status.error()));
  }
  ProcessInfo info;
  info.pid = pid;
  auto field = [&](std::string_view key) -> std::string_view {
    std::string needle = fmt::format("\n{}:", key);
    std::string_view text = *status;
    std::size_t pos = text.starts_with(needle.substr(1)) ? 0 : text.find(needle);
    if (pos == std::string_view::npos) return {};
    pos = text.find(':', pos) + 1;
    auto line = text.substr(pos, text.find('\n', pos) - pos);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    return line;
  };
  info.name = std::string(field("Name"));
  if (auto state = field("State"); !state.empty()) info.state = state.front();
  if (auto n = parse_u64(field("Threads"))) info.threads = static_cast<int>(*n);
  if (auto t = parse_u64(field("TracerPid"))) info.tracer_pid = static_cast<int>(*t);
  if (auto m = parse_u64(field("Seccomp"))) info.seccomp = static_cast<int>(*m);
  // A thread id also has a /proc entry; attaching wants the thread group.
  if (auto tgid = parse_u64(field("Tgid")); tgid && static_cast<std::int64_t>(*tgid) != pid.value()) {
    return fail(InvalidArgument{fmt::format("{} is a thread of process {}: pass the process id",
                                            pid.value(), *tgid)});
  }
  if (info.state == 'Z' || info.state == 'X') {
    return fail(NotFound{fmt::format("process {} ({}) has exited (zombie)", pid.value(), info.name),
                         "nothing left to watch: start it again"});
  }
  // Opening /proc/PID/mem takes the same ptrace access check an attach does.
  UniqueFd mem(open((dir + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mem) {
    if (errno == ENOENT || errno == ESRCH) return not_found();
    if (errno == EACCES || errno == EPERM) return fail(PermissionDenied{process_permission_text(pid)});
    return fail(io_error(dir + "/mem"));
  }
  if (info.tracer_pid != 0) {
    auto comm = read_text_file(fmt::format("/proc/{}/comm", info.tracer_pid));
    std::string tracer = comm ? std::string(std::string_view(*comm).substr(0, comm->find('\n'))) : "?";
    return fail(AlreadyExists{
        fmt::format("process {} is already traced by PID {} ({})", pid.value(), info.tracer_pid, tracer),
        "a process has one tracer at a time: detach the debugger (gdb, strace) and retry"});
  }
  return info;
}

}  // namespace haywire::glass
