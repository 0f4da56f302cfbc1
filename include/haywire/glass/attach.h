// Getting userfaultfd descriptors that were created INSIDE a target process into the monitor.
// A userfaultfd watches the memory of the process that created it, so it must be born in the
// target: at launch an LD_PRELOAD agent creates them and passes them over a socket
// (SCM_RIGHTS); for a running process we make its main thread call userfaultfd(2) through
// ptrace and take the descriptor with pidfd_getfd. What happens next (UFFDIO_API, registering
// ranges, scanning) is the tracker's job.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"
#include "haywire/base/types.h"

namespace haywire::glass {

// Descriptors created in the target, now owned by the monitor (O_CLOEXEC|O_NONBLOCK, no
// UFFDIO_API handshake done yet).
struct TargetUffds {
  std::vector<UniqueFd> fds;
  // Created with UFFD_USER_MODE_ONLY because the target may not create full ones (it lacks
  // CAP_SYS_PTRACE and vm.unprivileged_userfaultfd = 0). Async write-protect still sees every
  // write; in SYNC write-protect mode a write made by the kernel for the target (read(2) into
  // a protected page) is not delivered to us and fails in the target with EFAULT, so do not
  // sync-protect pages the target hands to system calls (or prefer async mode).
  bool user_mode_only = false;
  // How long injection held the target's main thread stopped (launch: zero; the wait for
  // release() is the caller's).
  std::chrono::nanoseconds target_paused{0};
};

// ---- launch: `haywire glass -- CMD ARGS` ----

// The agent is libhaywire-glass-agent.so; find_agent() looks at $HAYWIRE_GLASS_AGENT first. The
// environment variables it reads are in src/glass/agent_protocol.h.

struct LaunchOptions {
  std::string agent_path;  // empty: find_agent()
  // The agent must report within this, else the program ignored LD_PRELOAD (static binary).
  std::chrono::milliseconds handshake_timeout{5000};
  // The agent holds the target this long for release(), then runs it untracked (and says so
  // on the target's stderr).
  std::chrono::milliseconds go_ahead_timeout{30000};
  // Descriptors to give the target as its stdin/stdout/stderr; -1 inherits ours.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// A started target, held before main() until release().
struct LaunchedTarget {
  Pid pid;
  UniqueFd pidfd;  // readable when the target exits (poll it)
  TargetUffds uffds;
  UniqueFd control;  // socket to the agent; closing it without release() lets the target run untracked

  // Lets the target's main() start. Call after the tracker registered its ranges, so no early
  // write is missed. SystemCallFailed if the target is gone.
  Result<void> release();
  // Blocks until the target exits; the waitpid status. Only once.
  Result<int> wait();
};

// Starts argv[0] (searched in PATH) with the agent preloaded (appended to an existing
// LD_PRELOAD), receives `descriptor_count` (1..16) userfaultfds created in it, and returns with
// the target held before main(). Errors: agent missing (FileNotFound, hint to rebuild or set
// HAYWIRE_GLASS_AGENT), command not found (NotFound), the agent never reported (Timeout: the
// program ignores LD_PRELOAD, e.g. static; start it yourself and use --pid), the program exited
// first (ProcessFailed), the agent could not create them (SystemCallFailed). On error the
// started process is killed and reaped.
Result<LaunchedTarget> launch_with_agent(std::span<const std::string> argv, int descriptor_count,
                                         const LaunchOptions& options = {});

// $HAYWIRE_GLASS_AGENT, else libhaywire-glass-agent.so next to this executable, else the path
// the build put it at. FileNotFound naming every place looked at.
Result<std::string> find_agent();

// ---- attach: `haywire glass --pid PID` ----

struct InjectOptions {
  // Longest wait for the target's main thread to stop (it may sit in an uninterruptible
  // sleep); on expiry nothing was changed in the target.
  std::chrono::milliseconds stop_timeout{2000};
  // A target under a seccomp filter might be killed for calling userfaultfd(2): refused
  // unless this is set.
  bool allow_seccomp_filtered = false;
  // Test hook: runs while the target is stopped, registers saved, before anything changes.
  std::function<void(Pid)> while_stopped;
};

// Without the target's cooperation: seizes its main thread only (the others keep running),
// runs userfaultfd(O_CLOEXEC|O_NONBLOCK) `count` (1..16) times in it through an existing
// `syscall` instruction (its code is never written), duplicates each result with
// pidfd_getfd, closes the target's copies, restores every register (a thread interrupted in
// a blocking system call restarts it) and detaches. Blocking; runs the tracing on a private
// thread. Errors: NotFound (no such process, or it exited during injection), PermissionDenied
// (text names CAP_SYS_PTRACE / ptrace_scope), AlreadyExists (already traced), Unsupported
// (not x86-64, no pidfd_getfd, seccomp), Timeout (did not stop), SystemCallFailed.
// Not for a process that is this process's own thread or is stopped by job control.
Result<TargetUffds> inject_userfaultfds(Pid pid, int count, const InjectOptions& options = {});

}  // namespace haywire::glass
