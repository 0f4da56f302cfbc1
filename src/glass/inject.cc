// `haywire glass --pid PID`: make a running process create userfaultfds without its help.
//
// Only the main thread is seized and stopped; the other threads keep running the same code,
// so nothing is ever written into the target's memory. The main thread executes our system
// calls through a `syscall` instruction that already exists in an executable mapping (the
// vDSO has one). The kernel restarts an interrupted system call (rax = -ERESTART*, orig_rax =
// its number) on the way out of a stop taken in get_signal(); resuming a syscall-exit stop
// restarts it only if something else happens to set TIF_SIGPENDING. So the original registers
// are put back during a second PTRACE_INTERRUPT stop, from which the kernel restarts whatever
// the thread was blocked in (nanosleep, read, futex...) exactly as after a signal.
#include "haywire/glass/attach.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <optional>
#include <string_view>
#include <thread>

#include "glass/uapi.h"
#include "haywire/base/parse.h"
#include "haywire/glass/kernel_support.h"

#if defined(__x86_64__)
#include <sys/ptrace.h>
#include <sys/user.h>
#endif

namespace haywire::glass {

#if !defined(__x86_64__)

Result<TargetUffds> inject_userfaultfds(Pid, int, const InjectOptions&) {
  return fail(Unsupported{"userfaultfd injection with ptrace", "a non-x86-64 build",
                          "only x86-64 is implemented; start the program under "
                          "'haywire glass -- CMD' instead"});
}

#else

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxDescriptors = 16;

std::string exited_text(Pid pid) { return fmt::format("process {} exited during injection", pid.value()); }

Error target_gone(Pid pid) {
  return Error(NotFound{exited_text(pid), "nothing was left behind; start it again to watch it"});
}

// The address of a 0f 05 (`syscall`) byte pair in one of the target's executable mappings,
// the vDSO first (always there, small). Read through /proc/PID/mem: no write, no stop needed.
Result<std::uint64_t> find_syscall_instruction(Pid pid) {
  auto maps = read_text_file(fmt::format("/proc/{}/maps", pid.value()), 16 << 20);
  if (!maps) return std::unexpected(std::move(maps.error()));
  struct Range {
    std::uint64_t start, end;
    bool vdso;
  };
  std::vector<Range> ranges;
  std::string_view text = *maps;
  while (!text.empty()) {
    std::string_view line = text.substr(0, text.find('\n'));
    text.remove_prefix(std::min(text.size(), line.size() + 1));
    auto dash = line.find('-');
    auto space = line.find(' ');
    if (dash == std::string_view::npos || space == std::string_view::npos || dash > space) continue;
    auto start = parse_hex(line.substr(0, dash));
    auto end = parse_hex(line.substr(dash + 1, space - dash - 1));
    std::string_view perms = line.substr(space + 1, 4);
    if (!start || !end || *end <= *start || perms.size() < 3 || perms[2] != 'x') continue;
    bool vdso = line.ends_with("[vdso]");
    if (line.ends_with("[vsyscall]")) continue;  // emulated, not readable
    ranges.push_back({*start, *end, vdso});
  }
  std::stable_partition(ranges.begin(), ranges.end(), [](const Range& r) { return r.vdso; });
  auto mem = open_file(fmt::format("/proc/{}/mem", pid.value()), O_RDONLY);
  if (!mem) return std::unexpected(std::move(mem.error()));
  std::vector<unsigned char> buf(64 << 10);
  for (const Range& r : ranges) {
    for (std::uint64_t at = r.start; at < r.end;) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), r.end - at));
      ssize_t got = pread(mem->get(), buf.data(), want, static_cast<off_t>(at));
      if (got < 2) break;
      for (ssize_t i = 0; i + 1 < got; ++i) {
        if (buf[i] == 0x0f && buf[i + 1] == 0x05) return at + static_cast<std::uint64_t>(i);
      }
      at += static_cast<std::uint64_t>(got) - 1;  // a pair may straddle chunks
    }
  }
  return fail(NotFound{fmt::format("a syscall instruction in process {}", pid.value()),
                       "no executable mapping of it contains one; start the program under "
                       "'haywire glass -- CMD' instead"});
}

// One seized thread (the thread-group leader). Every method runs on the thread that seized it.
class Tracee {
 public:
  explicit Tracee(Pid pid) : pid_(pid) {}

  Result<void> seize() {
    if (ptrace(PTRACE_SEIZE, pid_.value(), nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
      int err = errno;
      if (err == ESRCH) return std::unexpected(target_gone(pid_));
      if (err == EPERM) {
        auto info = lookup_process(pid_);
        if (!info) return std::unexpected(std::move(info.error()));
        return fail(PermissionDenied{process_permission_text(pid_)});
      }
      return fail(SystemCallFailed{fmt::format("PTRACE_SEIZE of process {}", pid_.value()), err, ""});
    }
    return {};
  }

  Result<void> interrupt() {
    if (ptrace(PTRACE_INTERRUPT, pid_.value(), nullptr, nullptr) != 0) return failed("PTRACE_INTERRUPT");
    return {};
  }

  // Before anything changed: a signal arriving first is passed on unchanged, and giving up
  // (the caller's thread then exits, which detaches) leaves the process as it was.
  Result<void> wait_first_stop(Clock::time_point deadline) {
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      int status = 0;
      pid_t r = waitpid(pid_.value(), &status, __WALL | WNOHANG);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return failed("waitpid");
      if (r == 0) {
        if (Clock::now() >= deadline) {
          return fail(Timeout{fmt::format("waiting for process {} to stop (it may be in an "
                                          "uninterruptible sleep, state D); nothing was changed",
                                          pid_.value()),
                              0});
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(2000));
        continue;
      }
      if (WIFEXITED(status) || WIFSIGNALED(status)) return std::unexpected(target_gone(pid_));
      if (!WIFSTOPPED(status)) continue;
      const int sig = WSTOPSIG(status);
      if ((status >> 16) == PTRACE_EVENT_STOP) {
        if (sig == SIGTRAP) return {};
        return fail(InvalidArgument{fmt::format(
            "process {} is stopped by job control (signal {}); resume it with 'kill -CONT {}' "
            "and retry",
            pid_.value(), sig, pid_.value())});
      }
      // Signal-delivery stop: deliver it as if we were not there; the interrupt stays pending.
      if (ptrace(PTRACE_CONT, pid_.value(), nullptr, sig) != 0) return failed("PTRACE_CONT");
    }
  }

  // After we changed something: waits until the next stop of `kind`; signals that arrive are
  // held back and re-sent at detach, so our system calls never run a handler.
  enum class Kind { kSyscall, kInterrupt };
  Result<void> resume_until(int request, Kind kind) {
    if (ptrace(static_cast<__ptrace_request>(request), pid_.value(), nullptr, 0) != 0) {
      return failed("resuming");
    }
    for (;;) {
      int status = 0;
      pid_t r = waitpid(pid_.value(), &status, __WALL);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return failed("waitpid");
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        exited_ = true;
        return std::unexpected(target_gone(pid_));
      }
      if (!WIFSTOPPED(status)) continue;
      const int sig = WSTOPSIG(status);
      const int event = status >> 16;
      if (kind == Kind::kSyscall && sig == (SIGTRAP | 0x80)) return {};
      if (kind == Kind::kInterrupt && event == PTRACE_EVENT_STOP) return {};
      if (event == 0 && sig != (SIGTRAP | 0x80)) held_signals_.push_back(sig);
      if (ptrace(static_cast<__ptrace_request>(request), pid_.value(), nullptr, 0) != 0) {
        return failed("resuming");
      }
    }
  }

  Result<user_regs_struct> registers() {
    user_regs_struct regs{};
    if (ptrace(PTRACE_GETREGS, pid_.value(), nullptr, &regs) != 0) return failed("PTRACE_GETREGS");
    return regs;
  }
  Result<void> set_registers(const user_regs_struct& regs) {
    if (ptrace(PTRACE_SETREGS, pid_.value(), nullptr, &regs) != 0) return failed("PTRACE_SETREGS");
    return {};
  }

  // Runs one system call in the stopped thread and returns its raw result (-errno on error).
  // Leaves the thread in that call's syscall-exit stop.
  Result<long> run_syscall(const user_regs_struct& base, std::uint64_t gadget, long nr,
                           std::uint64_t arg0) {
    user_regs_struct regs = base;
    regs.rip = gadget;
    regs.rax = static_cast<std::uint64_t>(nr);
    regs.orig_rax = ~0ULL;  // not "in a system call": no restart applied on the way out
    regs.rdi = arg0;
    if (auto ok = set_registers(regs); !ok) return std::unexpected(ok.error());
    if (auto ok = resume_until(PTRACE_SYSCALL, Kind::kSyscall); !ok) return std::unexpected(ok.error());
    auto entry = registers();
    if (!entry) return std::unexpected(entry.error());
    if (entry->orig_rax != static_cast<std::uint64_t>(nr) || entry->rip != gadget + 2) {
      user_regs_struct skip = *entry;
      skip.orig_rax = ~0ULL;  // whatever this is, it must not run with our registers
      (void)set_registers(skip);
      return fail(SystemCallFailed{
          fmt::format("running a system call in process {}: entered {} at {:#x}, expected {} at "
                      "{:#x}",
                      pid_.value(), static_cast<long long>(entry->orig_rax), entry->rip, nr, gadget + 2),
          0, "please report this"});
    }
    if (auto ok = resume_until(PTRACE_SYSCALL, Kind::kSyscall); !ok) return std::unexpected(ok.error());
    auto done = registers();
    if (!done) return std::unexpected(done.error());
    return static_cast<long>(done->rax);
  }

  // From a syscall-exit stop: back to an interrupt stop, put `saved` back, re-send held
  // signals, detach. The kernel then restarts an interrupted system call itself.
  Result<void> restore_and_detach(const user_regs_struct& saved, bool in_interrupt_stop) {
    if (!in_interrupt_stop) {
      if (auto ok = interrupt(); !ok) return ok;
      if (auto ok = resume_until(PTRACE_CONT, Kind::kInterrupt); !ok) return ok;
    }
    if (auto ok = set_registers(saved); !ok) return ok;
    for (int sig : held_signals_) syscall(SYS_tgkill, pid_.value(), pid_.value(), sig);
    if (ptrace(PTRACE_DETACH, pid_.value(), nullptr, 0) != 0) return failed("PTRACE_DETACH");
    return {};
  }

  [[nodiscard]] bool exited() const { return exited_; }

 private:
  std::unexpected<Error> failed(std::string_view what) {
    int err = errno;
    if (err == ESRCH) {
      // Not in a stop any more: in our sequences that means it was killed. Give it a moment
      // to finish exiting, then say so.
      const auto deadline = Clock::now() + std::chrono::seconds(1);
      while (Clock::now() < deadline) {
        int status = 0;
        pid_t r = waitpid(pid_.value(), &status, __WALL | WNOHANG);
        if ((r == pid_.value() && (WIFEXITED(status) || WIFSIGNALED(status))) ||
            (r < 0 && errno == ECHILD)) {
          exited_ = true;
          return std::unexpected(target_gone(pid_));
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    return std::unexpected(Error(
        SystemCallFailed{fmt::format("{} on process {}", what, pid_.value()), err, ""}));
  }

  Pid pid_;
  bool exited_ = false;
  std::vector<int> held_signals_;
};

struct Session {
  Pid pid;
  int count;
  const InjectOptions& options;
  UniqueFd pidfd;
  std::uint64_t gadget = 0;

  // The part between "stopped, registers saved" and "about to restore".
  Result<TargetUffds> create_all(Tracee& tracee, const user_regs_struct& saved) {
    TargetUffds out;
    long flags = O_CLOEXEC | O_NONBLOCK;
    for (int i = 0; i < count; ++i) {
      auto fd = tracee.run_syscall(saved, gadget, SYS_userfaultfd, static_cast<std::uint64_t>(flags));
      if (!fd) return std::unexpected(fd.error());
      if ((*fd == -EPERM || *fd == -EACCES) && !out.user_mode_only) {
        // The target may not create full descriptors: user-mode-only ones need no privilege.
        out.user_mode_only = true;
        flags |= UFFD_USER_MODE_ONLY;
        --i;
        continue;
      }
      if (*fd < 0) {
        return fail(SystemCallFailed{
            fmt::format("userfaultfd(2) inside process {}", pid.value()), static_cast<int>(-*fd),
            "run as root, or 'sysctl vm.unprivileged_userfaultfd=1'; a seccomp filter or LSM "
            "may also forbid it"});
      }
      long taken = syscall(SYS_pidfd_getfd, pidfd.get(), static_cast<int>(*fd), 0);
      int err = errno;
      auto closed = tracee.run_syscall(saved, gadget, SYS_close, static_cast<std::uint64_t>(*fd));
      if (taken < 0) {
        return fail(SystemCallFailed{fmt::format("pidfd_getfd from process {}", pid.value()), err,
                                     "needs the same ptrace rights as attaching"});
      }
      out.fds.emplace_back(static_cast<int>(taken));
      if (!closed) return std::unexpected(closed.error());
    }
    return out;
  }

  Result<TargetUffds> run() {
    auto info = lookup_process(pid);
    if (!info) return std::unexpected(std::move(info.error()));
    if (info->state == 'T' || info->state == 't') {
      return fail(InvalidArgument{fmt::format(
          "process {} is stopped; resume it with 'kill -CONT {}' and retry", pid.value(), pid.value())});
    }
    if (info->seccomp != 0 && !options.allow_seccomp_filtered) {
      return fail(Unsupported{
          fmt::format("injecting userfaultfd(2) into process {} ({})", pid.value(), info->name),
          fmt::format("seccomp mode {}", info->seccomp),
          "its seccomp filter could kill it for a system call it never makes itself; start it "
          "under 'haywire glass -- CMD' instead (or allow it explicitly if you know the filter)"});
    }
    if (auto ok = require_pidfd_getfd(kernel_support()); !ok) return std::unexpected(ok.error());
    pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid.value(), 0)));
    if (!pidfd) {
      if (errno == ESRCH) return std::unexpected(target_gone(pid));
      return fail(SystemCallFailed{"pidfd_open", errno, ""});
    }
    auto found = find_syscall_instruction(pid);
    if (!found) return std::unexpected(std::move(found.error()));
    gadget = *found;

    Tracee tracee(pid);
    if (auto ok = tracee.seize(); !ok) return std::unexpected(ok.error());
    // From here on, returning early without detaching is safe only until registers change:
    // the kernel detaches when this (private) thread exits.
    if (auto ok = tracee.interrupt(); !ok) return std::unexpected(ok.error());
    if (auto ok = tracee.wait_first_stop(Clock::now() + options.stop_timeout); !ok) {
      return std::unexpected(ok.error());
    }
    const auto stopped_at = Clock::now();
    auto saved = tracee.registers();
    if (!saved) return std::unexpected(saved.error());
    if (options.while_stopped) options.while_stopped(pid);

    auto made = create_all(tracee, *saved);
    if (tracee.exited()) return std::unexpected(target_gone(pid));
    auto restored = tracee.restore_and_detach(*saved, false);
    if (!restored) return std::unexpected(restored.error());
    if (!made) return made;
    made->target_paused = Clock::now() - stopped_at;
    return made;
  }
};

}  // namespace

Result<TargetUffds> inject_userfaultfds(Pid pid, int count, const InjectOptions& options) {
  if (count < 1 || count > kMaxDescriptors) {
    return fail(InvalidArgument{fmt::format("descriptor count {} not in 1..{}", count, kMaxDescriptors)});
  }
  if (pid.value() == getpid()) {
    return fail(InvalidArgument{"cannot inject into this process itself"});
  }
  // A private thread is the tracer: if anything fails before the registers change, its exit
  // detaches the target, and the caller's threads never become anyone's tracer.
  std::optional<Result<TargetUffds>> result;
  std::thread tracer([&] {
    Session session{pid, count, options, {}, 0};
    result.emplace(session.run());
  });
  tracer.join();
  return std::move(*result);
}

#endif

}  // namespace haywire::glass
