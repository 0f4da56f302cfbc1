// `haywire glass -- CMD`: start CMD with the agent preloaded and receive the userfaultfds it
// creates (see agent.cc for the other end).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <fmt/format.h>
#include <string_view>

#include "glass/agent_protocol.h"
#include "glass/launch_internal.h"
#include "haywire/glass/attach.h"

extern char** environ;  // NOLINT: POSIX

namespace haywire::glass {
namespace {

namespace proto = agent_protocol;

bool readable(const std::string& path) { return !path.empty() && access(path.c_str(), R_OK) == 0; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return fmt::format("wait status {:#x}", status);
}

// Kills and reaps a child we started and could not hand over.
void discard_child(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::vector<std::string> agent_environment(const std::string& agent, int sock_fd, int count,
                                           std::chrono::milliseconds go_ahead_timeout) {
  std::vector<std::string> env;
  std::string preload;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("LD_PRELOAD=")) {
      preload = std::string(entry.substr(11));
      continue;
    }
    if (entry.starts_with("HAYWIRE_GLASS_AGENT_")) continue;
    env.emplace_back(entry);
  }
  // Appended: the user's own preloads keep their order and precedence.
  env.push_back(fmt::format("LD_PRELOAD={}{}{}", preload, preload.empty() ? "" : ":", agent));
  env.push_back(fmt::format("{}={}", proto::kFdEnv, sock_fd));
  env.push_back(fmt::format("{}={}", proto::kCountEnv, count));
  env.push_back(fmt::format("{}={}", proto::kTimeoutEnv, go_ahead_timeout.count()));
  return env;
}

bool is_userfaultfd(int fd) {
  char link[64];
  ssize_t n = readlink(fmt::format("/proc/self/fd/{}", fd).c_str(), link, sizeof(link) - 1);
  if (n < 0) return false;
  return std::string_view(link, static_cast<std::size_t>(n)) == "anon_inode:[userfaultfd]";
}

}  // namespace

Result<TargetUffds> receive_agent_hello(int sock, int expected_count) {
  proto::Hello hello{};
  iovec iov{&hello, sizeof(hello)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * proto::kMaxDescriptors)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t got;
  do {
    got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return fail(SystemCallFailed{"receiving from the glass agent", errno, ""});

  // Take ownership of whatever arrived before judging the message, so nothing leaks.
  TargetUffds out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) {
      continue;
    }
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(fd);
    }
  }
  auto bad = [](std::string detail) {
    return fail(ParseError{"message from the glass agent", std::move(detail)});
  };
  if (got == 0) return bad("the agent closed the socket without a message");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) return bad("message or descriptors truncated");
  if (static_cast<std::size_t>(got) != sizeof(hello)) {
    return bad(fmt::format("{} bytes, expected {}", got, sizeof(hello)));
  }
  if (hello.magic != proto::kMagic || hello.size != sizeof(hello)) return bad("bad magic or size");
  if (hello.version != proto::kVersion) {
    return bad(fmt::format("protocol version {} (monitor speaks {}): agent and haywire come from "
                           "different builds; set HAYWIRE_GLASS_AGENT to this build's agent",
                           hello.version, proto::kVersion));
  }
  if (hello.count != out.fds.size()) {
    return bad(fmt::format("announces {} descriptors, {} attached", hello.count, out.fds.size()));
  }
  if (hello.count == 0) {
    return fail(SystemCallFailed{
        "userfaultfd(2) in the target", hello.err,
        "run as root or with CAP_SYS_PTRACE, or 'sysctl vm.unprivileged_userfaultfd=1'; kernels "
        "before 5.11 lack UFFD_USER_MODE_ONLY"});
  }
  if (static_cast<int>(hello.count) != expected_count) {
    return bad(fmt::format("{} descriptors, asked for {}", hello.count, expected_count));
  }
  for (const auto& fd : out.fds) {
    if (!is_userfaultfd(fd.get())) return bad("an attached descriptor is not a userfaultfd");
  }
  out.user_mode_only = hello.user_mode_only != 0;
  return out;
}

Result<std::string> find_agent() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv(proto::kPathEnv); env != nullptr && *env != '\0') {
    if (readable(env)) return std::string(env);
    return fail(FileNotFound{fmt::format("{} (from ${})", env, proto::kPathEnv)});
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    std::string_view self(exe, static_cast<std::size_t>(n));
    std::string beside = fmt::format("{}/{}", self.substr(0, self.rfind('/')), proto::kFileName);
    if (readable(beside)) return beside;
    tried.push_back(std::move(beside));
  }
#ifdef HAYWIRE_GLASS_AGENT_BUILD_PATH
  if (readable(HAYWIRE_GLASS_AGENT_BUILD_PATH)) return std::string(HAYWIRE_GLASS_AGENT_BUILD_PATH);
  tried.emplace_back(HAYWIRE_GLASS_AGENT_BUILD_PATH);
#endif
  return fail(NotFound{fmt::format("the glass agent {} (looked at {})", proto::kFileName,
                                   fmt::join(tried, ", ")),
                       fmt::format("build the haywire_glass_agent target, or set ${} to its path",
                                   proto::kPathEnv)});
}

Result<LaunchedTarget> launch_with_agent(std::span<const std::string> argv, int descriptor_count,
                                         const LaunchOptions& options) {
  if (argv.empty() || argv[0].empty()) return fail(InvalidArgument{"no command to start"});
  if (descriptor_count < 1 || descriptor_count > proto::kMaxDescriptors) {
    return fail(InvalidArgument{
        fmt::format("descriptor count {} not in 1..{}", descriptor_count, proto::kMaxDescriptors)});
  }
  std::string agent = options.agent_path;
  if (agent.empty()) {
    auto found = find_agent();
    if (!found) return std::unexpected(std::move(found.error()));
    agent = std::move(*found);
  } else if (!readable(agent)) {
    return fail(FileNotFound{agent});
  }
  if (agent.find_first_of(": ") != std::string::npos) {
    return fail(InvalidArgument{fmt::format(
        "agent path '{}' contains ':' or ' ', which LD_PRELOAD cannot carry: move it", agent)});
  }

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return fail(SystemCallFailed{"socketpair for the glass agent", errno, ""});
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  // The child needs its end without FD_CLOEXEC. Rather than clear the flag here (racing with
  // other threads' exec), spawn dup2()s it onto a slot that is CLOEXEC in this process only.
  UniqueFd slot(fcntl(theirs.get(), F_DUPFD_CLOEXEC, 3));
  if (!slot) return fail(SystemCallFailed{"fcntl(F_DUPFD_CLOEXEC)", errno, ""});

  std::vector<std::string> env =
      agent_environment(agent, slot.get(), descriptor_count, options.go_ahead_timeout);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args(argv.begin(), argv.end());
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), slot.get());
  const int stdio[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    if (stdio[i] >= 0) posix_spawn_file_actions_adddup2(&actions, stdio[i], i);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argp[0], &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  theirs.reset();
  slot.reset();
  if (rc == ENOENT) {
    return fail(NotFound{fmt::format("command '{}' not found", argv[0]),
                         argv[0].find('/') == std::string::npos
                             ? "check the name; it is searched in $PATH"
                             : "check the path"});
  }
  if (rc == EACCES) return fail(PermissionDenied{fmt::format("{} (not executable?)", argv[0])});
  if (rc != 0) return fail(SystemCallFailed{fmt::format("starting '{}'", argv[0]), rc, ""});

  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    int err = errno;
    discard_child(pid);
    return fail(SystemCallFailed{"pidfd_open", err, "needs Linux 5.3+"});
  }

  // Wait for the agent's message; the child exiting or the time running out end the wait.
  const auto timeout_ms = static_cast<int>(options.handshake_timeout.count());
  pollfd fds[2] = {{ours.get(), POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
  int ready;
  do {
    ready = poll(fds, 2, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    discard_child(pid);
    return fail(Timeout{fmt::format(
                            "waiting for the glass agent in '{}': it ignores LD_PRELOAD "
                            "(statically linked, or setuid); start it yourself and attach with "
                            "'haywire glass --pid PID'",
                            argv[0]),
                        timeout_ms});
  }
  // The child's end closes only when it exits (it is not close-on-exec there), so an empty
  // socket plus a readable pidfd means the program ended without the agent ever running.
  auto ended_first = [&]() -> std::optional<Error> {
    pollfd exited{pidfd.get(), POLLIN, 0};
    if (poll(&exited, 1, 1000) != 1) return std::nullopt;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Error(ProcessFailed{fmt::format("'{}' ended before the glass agent reported", argv[0]),
                               describe_status(status)});
  };
  char peek = 0;
  if ((fds[0].revents & POLLIN) == 0 || recv(ours.get(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
    if (auto ended = ended_first()) return std::unexpected(std::move(*ended));
  }
  auto uffds = receive_agent_hello(ours.get(), descriptor_count);
  if (!uffds) {
    discard_child(pid);
    return std::unexpected(std::move(uffds).error().with_context(
        fmt::format("starting '{}' with the glass agent", argv[0])));
  }
  // Then its word that it closed its own copies (none may stay in the target).
  char closed = 0;
  pollfd wait_closed{ours.get(), POLLIN, 0};
  do {
    ready = poll(&wait_closed, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0 || recv(ours.get(), &closed, 1, MSG_DONTWAIT) != 1 || closed != proto::kClosed) {
    discard_child(pid);
    return fail(ParseError{"message from the glass agent",
                           fmt::format("'{}': no confirmation that its descriptors were closed",
                                       argv[0])});
  }
  LaunchedTarget target;
  target.pid = Pid(pid);
  target.pidfd = std::move(pidfd);
  target.uffds = std::move(*uffds);
  target.control = std::move(ours);
  return target;
}

Result<void> LaunchedTarget::release() {
  if (!control) return fail(InvalidArgument{"target already released"});
  char go = proto::kGoAhead;
  ssize_t sent;
  do {
    sent = send(control.get(), &go, 1, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  control.reset();
  if (sent != 1) {
    return fail(SystemCallFailed{fmt::format("releasing process {}", pid.value()), err,
                                 "the target exited or the agent gave up waiting"});
  }
  return {};
}

Result<int> LaunchedTarget::wait() {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid.value(), &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return fail(SystemCallFailed{fmt::format("waitpid({})", pid.value()), errno, ""});
  return status;
}

}  // namespace haywire::glass
