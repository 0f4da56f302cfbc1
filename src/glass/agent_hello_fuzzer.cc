// The monitor's side of the agent handshake on arbitrary bytes: the first input byte picks how
// many ordinary descriptors (not userfaultfds) ride along, the rest is the message. Must never
// crash, never accept, and never leak a received descriptor.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "glass/agent_protocol.h"
#include "glass/launch_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 256) return 0;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return 0;
  haywire::UniqueFd monitor(pair[0]), agent(pair[1]);
  const int extra = data[0] % 4;
  int fds[3];
  for (int i = 0; i < extra; ++i) fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  (void)haywire::glass::agent_protocol::send_with_descriptors(agent.get(), data + 1, size - 1, fds,
                                                              static_cast<std::size_t>(extra), 0);
  for (int i = 0; i < extra; ++i) close(fds[i]);
  auto got = haywire::glass::receive_agent_hello(monitor.get(), 1);
  // Descriptors that are not userfaultfds can never make a valid hand-over.
  if (got) std::abort();
  return 0;
}
