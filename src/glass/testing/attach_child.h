// Test helpers for the attach tests: start a target with pipes on stdin/stdout (optionally as
// another user), read its lines, look at its descriptors, and check a userfaultfd really
// belongs to it.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "glass/uapi.h"
#include "haywire/base/fd.h"
#include "haywire/base/parse.h"

namespace haywire::glass::testing {

inline constexpr uid_t kNobody = 65534;

struct Child {
  pid_t pid = -1;
  UniqueFd stdin_w;
  UniqueFd stdout_r;
  bool reaped = false;

  Child() = default;
  Child(Child&& other) noexcept
      : pid(std::exchange(other.pid, -1)),
        stdin_w(std::move(other.stdin_w)),
        stdout_r(std::move(other.stdout_r)),
        reaped(other.reaped) {}
  ~Child() {
    if (pid > 0 && !reaped) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

  // Next line of stdout (without '\n'), or nullopt at EOF / after the timeout.
  std::optional<std::string> line(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{stdout_r.get(), POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char c = 0;
      if (read(stdout_r.get(), &c, 1) != 1) return std::nullopt;
      if (c == '\n') return out;
      out.push_back(c);
    }
  }
  std::string rest() {
    std::string out;
    while (auto l = line()) out += *l + "\n";
    return out;
  }
  // The waitpid status; -1 if already reaped elsewhere (a tracer that was also our parent).
  int wait() {
    int status = 0;
    pid_t r = waitpid(pid, &status, 0);
    reaped = true;
    return r == pid ? status : -1;
  }
};

// fork + exec with stdin/stdout on pipes, as `uid` when given (we are root in the tests).
inline Child start_child(const std::vector<std::string>& argv, std::optional<uid_t> uid = {}) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return {};
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    if (uid && (setgid(*uid) != 0 || setuid(*uid) != 0)) _exit(126);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  Child child;
  child.pid = pid;
  child.stdin_w = UniqueFd(in[1]);
  child.stdout_r = UniqueFd(out[0]);
  return child;
}

// How many userfaultfds /proc/PID/fd lists.
inline int count_userfaultfds(pid_t pid) {
  int count = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    char link[128];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), link, sizeof(link) - 1);
    if (n > 0 && std::string(link, static_cast<std::size_t>(n)) == "anon_inode:[userfaultfd]") ++count;
  }
  closedir(d);
  return count;
}

// UFFDIO_API from this (the monitor) process; the features the kernel reported, or nullopt.
inline std::optional<std::uint64_t> uffd_api(int fd) {
  uffdio_api api{};
  api.api = UFFD_API;
  if (ioctl(fd, UFFDIO_API, &api) != 0) return std::nullopt;
  return api.features;
}

// Proves `fd` watches `pid`'s memory, not ours: registers (then unregisters) a writable
// private mapping of the target that is not mapped in this process at all.
inline bool registers_in_target(int fd, pid_t pid) {
  auto maps = read_text_file("/proc/" + std::to_string(pid) + "/maps");
  if (!maps) return false;
  std::string_view text = *maps;
  while (!text.empty()) {
    std::string_view l = text.substr(0, text.find('\n'));
    text.remove_prefix(std::min(text.size(), l.size() + 1));
    auto dash = l.find('-'), space = l.find(' ');
    if (dash == std::string_view::npos || space == std::string_view::npos) continue;
    if (l.substr(space + 1, 4) != "rw-p") continue;
    // Anonymous only (inode 0): MISSING mode refuses file-backed private mappings.
    std::string_view fields = l;
    for (int skip = 0; skip < 4; ++skip) {
      fields.remove_prefix(std::min(fields.size(), fields.find(' ') + 1));
    }
    if (!fields.starts_with("0 ")) continue;
    auto start = parse_hex(l.substr(0, dash));
    if (!start) continue;
    // Not mapped here: msync on an unmapped page fails with ENOMEM.
    if (msync(reinterpret_cast<void*>(*start), 4096, MS_ASYNC) == 0 || errno != ENOMEM) continue;
    uffdio_register reg{};
    reg.range.start = *start;
    reg.range.len = 4096;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) return false;
    return ioctl(fd, UFFDIO_UNREGISTER, &reg.range) == 0;
  }
  return false;
}

}  // namespace haywire::glass::testing
