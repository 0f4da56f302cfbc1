// The one message the LD_PRELOAD agent sends the monitor (with the descriptors attached as
// SCM_RIGHTS) and the one byte the monitor answers. Plain fixed-width fields: the agent is
// built without the C++ library and both ends come from the same build.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace haywire::glass::agent_protocol {

inline constexpr std::uint32_t kMagic = 0x48574741;  // "HWGA"
inline constexpr std::uint16_t kVersion = 1;
inline constexpr int kMaxDescriptors = 16;
inline constexpr char kGoAhead = 'G';
// Sent by the agent after the Hello once it closed its own copies of the descriptors, so the
// monitor can promise that none is left in the target.
inline constexpr char kClosed = 'C';

// Environment the monitor gives the agent; the agent removes them, and its LD_PRELOAD entry,
// before the program's main() so the program's children do not load it again.
inline constexpr const char* kFdEnv = "HAYWIRE_GLASS_AGENT_FD";             // socket descriptor
inline constexpr const char* kCountEnv = "HAYWIRE_GLASS_AGENT_COUNT";       // descriptors wanted
inline constexpr const char* kTimeoutEnv = "HAYWIRE_GLASS_AGENT_TIMEOUT_MS";  // go-ahead wait
// Where the monitor looks for the agent first, and its file name.
inline constexpr const char* kPathEnv = "HAYWIRE_GLASS_AGENT";
inline constexpr const char* kFileName = "libhaywire-glass-agent.so";

struct Hello {
  std::uint32_t magic;
  std::uint16_t version;
  std::uint16_t size;   // sizeof(Hello)
  std::int32_t pid;     // getpid() in the agent
  std::uint32_t count;  // descriptors attached (0 when creation failed)
  std::uint32_t user_mode_only;  // 1: created with UFFD_USER_MODE_ONLY
  std::int32_t err;     // errno of the failed userfaultfd(2), 0 on success
};
static_assert(sizeof(Hello) == 24);

// More than an agent ever sends, so tests can send too many to the monitor on purpose.
inline constexpr std::size_t kMaxSendable = 64;

// Sends `size` bytes with `count` descriptors attached (SCM_RIGHTS, none when 0) in one
// sendmsg, retried on EINTR; returns what sendmsg returned. libc only: the agent links no C++
// library, and a forked test child may call it.
inline ssize_t send_with_descriptors(int socket, const void* bytes, std::size_t size, const int* fds,
                                     std::size_t count, int flags = MSG_NOSIGNAL) {
  if (count > kMaxSendable) {
    errno = EINVAL;
    return -1;
  }
  iovec iov{const_cast<void*>(bytes), size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSendable)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * count);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &msg, flags);
  } while (sent < 0 && errno == EINTR);
  return sent;
}

}  // namespace haywire::glass::agent_protocol
