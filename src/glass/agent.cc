// libhaywire-glass-agent.so: preloaded into a program started by `haywire glass -- CMD`. Its
// constructor runs before the program's main(): it creates the userfaultfds (they must be born
// in the target), hands them to the monitor over the inherited socket, forgets every trace of
// itself in the environment, and holds the program until the monitor has registered its
// ranges. Only libc is used (no C++ library, no exceptions): it lives inside someone else's
// process.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "glass/agent_protocol.h"

namespace {

namespace proto = haywire::glass::agent_protocol;

constexpr int kUffdUserModeOnly = 1;  // UFFD_USER_MODE_ONLY

void say(const char* text) {
  ssize_t ignored = write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

bool parse_int(const char* text, long* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = value;
  return true;
}

const char* base_name(const char* path, std::size_t len, std::size_t* base_len) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < len; ++i) {
    if (path[i] == '/') start = i + 1;
  }
  *base_len = len - start;
  return path + start;
}

// Drops our entry from LD_PRELOAD (entries split by ':' or ' '), keeping the user's own.
void remove_self_from_preload() {
  const char* preload = std::getenv("LD_PRELOAD");
  if (preload == nullptr) return;
  const std::size_t total = std::strlen(preload);
  char* kept = static_cast<char*>(std::malloc(total + 1));
  if (kept == nullptr) return;
  std::size_t out = 0;
  const std::size_t self_len = std::strlen(proto::kFileName);
  for (std::size_t i = 0; i < total;) {
    std::size_t j = i;
    while (j < total && preload[j] != ':' && preload[j] != ' ') ++j;
    std::size_t base_len = 0;
    const char* base = base_name(preload + i, j - i, &base_len);
    const bool is_self =
        base_len == self_len && std::memcmp(base, proto::kFileName, self_len) == 0;
    if (j > i && !is_self) {
      if (out > 0) kept[out++] = ':';
      std::memcpy(kept + out, preload + i, j - i);
      out += j - i;
    }
    i = j + 1;
  }
  kept[out] = '\0';
  if (out == 0) unsetenv("LD_PRELOAD");
  else setenv("LD_PRELOAD", kept, 1);
  std::free(kept);
}

long create_uffd(bool* user_mode_only, int* err) {
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) return fd;
  if (errno == EPERM || errno == EACCES) {
    fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kUffdUserModeOnly);
    if (fd >= 0) {
      *user_mode_only = true;
      return fd;
    }
  }
  *err = errno;
  return -1;
}

long long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Waits for the go-ahead byte. Any outcome lets the program run; only the message differs.
void wait_for_go_ahead(int sock, long timeout_ms) {
  const long long deadline = now_ms() + timeout_ms;
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) {
      say("haywire-glass-agent: no go-ahead from the monitor in time; running untracked\n");
      return;
    }
    pollfd p{sock, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char byte = 0;
    ssize_t got = read(sock, &byte, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got == 1 && byte == proto::kGoAhead) return;
    say("haywire-glass-agent: the monitor went away before the go-ahead; running untracked\n");
    return;
  }
}

__attribute__((constructor)) void haywire_glass_agent_start() {
  long sock = -1;
  if (!parse_int(std::getenv(proto::kFdEnv), &sock) || sock < 0) return;
  long count = 1;
  long timeout_ms = 30000;
  parse_int(std::getenv(proto::kCountEnv), &count);
  parse_int(std::getenv(proto::kTimeoutEnv), &timeout_ms);
  if (count < 1 || count > proto::kMaxDescriptors) count = 1;
  if (timeout_ms < 0) timeout_ms = 0;
  unsetenv(proto::kFdEnv);
  unsetenv(proto::kCountEnv);
  unsetenv(proto::kTimeoutEnv);
  remove_self_from_preload();
  const int fd = static_cast<int>(sock);

  int uffds[proto::kMaxDescriptors];
  int made = 0;
  bool user_mode_only = false;
  int err = 0;
  for (long i = 0; i < count; ++i) {
    long uffd = create_uffd(&user_mode_only, &err);
    if (uffd < 0) break;
    uffds[made++] = static_cast<int>(uffd);
  }
  if (made < count) {  // all or nothing: the monitor asked for `count`
    for (int i = 0; i < made; ++i) close(uffds[i]);
    made = 0;
  }

  proto::Hello hello{};
  hello.magic = proto::kMagic;
  hello.version = proto::kVersion;
  hello.size = sizeof(hello);
  hello.pid = getpid();
  hello.count = static_cast<std::uint32_t>(made);
  hello.user_mode_only = user_mode_only ? 1 : 0;
  hello.err = err;

  ssize_t sent = proto::send_with_descriptors(fd, &hello, sizeof(hello), uffds, static_cast<std::size_t>(made));
  for (int i = 0; i < made; ++i) close(uffds[i]);  // the monitor holds them now
  if (sent == static_cast<ssize_t>(sizeof(hello))) {
    char closed = proto::kClosed;
    do {
      sent = send(fd, &closed, 1, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent == 1) sent = sizeof(hello);
  }
  // Held even after a failure: the monitor then decides (it kills the program it started).
  if (sent == static_cast<ssize_t>(sizeof(hello))) {
    wait_for_go_ahead(fd, timeout_ms);
  } else if (sent < 0) {
    say("haywire-glass-agent: cannot reach the monitor; running untracked\n");
  }
  close(fd);
}

}  // namespace
