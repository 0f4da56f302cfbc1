// Test fixture: a forked child that creates its own userfaultfd (the raw syscall, as the real
// agent would inside a target) and passes it to the parent over a socketpair (SCM_RIGHTS). The
// child then writes, unmaps, remaps or exits on command, acknowledging each, so tests know
// exactly which pages were written. Not the product's agent; tests only.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "glass/agent_protocol.h"
#include "glass/uapi.h"
#include "haywire/base/fd.h"
#include "haywire/base/types.h"

namespace haywire::glass::testing {

class UffdChild {
 public:
  enum Op : std::uint64_t { kWrite = 1, kUnmap = 2, kExit = 3, kReadOnly = 4, kWritable = 5, kRemap = 6 };

  // Forks; the child maps `pages` anonymous pages (never touched) and one userfaultfd per
  // `contexts`, starts `idle_threads` threads that only sleep (a tracker samples threads only
  // in a multithreaded process), sends the descriptors and waits for commands.
  bool start(std::size_t pages, int contexts = 1, int idle_threads = 0) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::close(sv[0]);
      child_main(sv[1], pages, contexts, idle_threads);
    }
    ::close(sv[1]);
    sock_ = UniqueFd(sv[0]);
    std::uint64_t base = 0;
    char cbuf[CMSG_SPACE(sizeof(int) * 4)] = {};
    iovec iov{&base, sizeof base};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    if (::recvmsg(sock_.get(), &msg, 0) != static_cast<ssize_t>(sizeof base)) return false;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return false;
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds_.emplace_back(fd);
    }
    base_ = VirtAddr(base);
    return fds_.size() == static_cast<std::size_t>(contexts);
  }

  ~UffdChild() {
    if (pid_ > 0) {
      send_command(kExit, {});
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  // Sends a command; does not wait (a command that raises a userfaultfd event blocks the child
  // until the event is read). Then call wait_ack().
  bool send_command(Op op, const std::vector<std::uint64_t>& pages) {
    std::vector<std::uint64_t> words{op, pages.size()};
    words.insert(words.end(), pages.begin(), pages.end());
    std::size_t bytes = words.size() * sizeof(std::uint64_t);
    return ::send(sock_.get(), words.data(), bytes, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes);
  }
  bool wait_ack() {
    char ack = 0;
    return ::recv(sock_.get(), &ack, 1, 0) == 1;
  }
  bool write_pages(const std::vector<std::uint64_t>& pages) { return send_command(kWrite, pages) && wait_ack(); }

  UniqueFd take_uffd(std::size_t i = 0) { return std::move(fds_.at(i)); }
  [[nodiscard]] Pid pid() const { return Pid(pid_); }
  [[nodiscard]] VirtAddr base() const { return base_; }
  [[nodiscard]] VirtAddr page(std::uint64_t index) const { return base_ + index * kPageSize; }

 private:
  [[noreturn]] static void child_main(int sock, std::size_t pages, int contexts, int idle_threads) {
    for (int i = 0; i < idle_threads; ++i) {
      std::thread([] {
        while (true) ::pause();
      }).detach();
    }
    auto* mem = static_cast<unsigned char*>(::mmap(nullptr, pages * kPageSize, PROT_READ | PROT_WRITE,
                                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (mem == MAP_FAILED) ::_exit(10);
    std::vector<int> fds;
    for (int i = 0; i < contexts; ++i) {
      long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
      if (fd < 0) ::_exit(11);
      fds.push_back(static_cast<int>(fd));
    }
    std::uint64_t base = reinterpret_cast<std::uint64_t>(mem);
    if (agent_protocol::send_with_descriptors(sock, &base, sizeof base, fds.data(), fds.size(), 0) < 0) ::_exit(12);
    // Like a real agent: the descriptors now belong to the monitor.
    for (int fd : fds) ::close(fd);
    while (true) {
      std::uint64_t head[2];
      if (!read_all(sock, head, sizeof head)) ::_exit(0);
      std::vector<std::uint64_t> list(head[1]);
      if (!list.empty() && !read_all(sock, list.data(), list.size() * sizeof(std::uint64_t))) ::_exit(13);
      if (head[0] == kExit) ::_exit(0);
      for (std::uint64_t p : list) {
        if (head[0] == kWrite) mem[p * kPageSize + (p % 64)] = static_cast<unsigned char>(p + 1);
        if (head[0] == kUnmap) ::munmap(mem + p * kPageSize, kPageSize);
        if (head[0] == kReadOnly) ::mprotect(mem + p * kPageSize, kPageSize, PROT_READ);
        if (head[0] == kWritable) ::mprotect(mem + p * kPageSize, kPageSize, PROT_READ | PROT_WRITE);
        if (head[0] == kRemap) {  // fresh memory in place of the page (not registered with anyone)
          ::mmap(mem + p * kPageSize, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        }
      }
      char ack = 1;
      if (::send(sock, &ack, 1, MSG_NOSIGNAL) != 1) ::_exit(14);
    }
  }
  static bool read_all(int fd, void* buf, std::size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
      ssize_t got = ::recv(fd, p, n, 0);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  pid_t pid_ = -1;
  UniqueFd sock_;
  std::vector<UniqueFd> fds_;
  VirtAddr base_;
};

}  // namespace haywire::glass::testing
