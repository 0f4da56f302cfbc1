// The one message the LD_PRELOAD agent sends the monitor (with the descriptors attached as
// SCM_RIGHTS) and the one byte the monitor answers. Plain fixed-width fields: the agent is
// built without the C++ library and both ends come from the same build.
#pragma once

#include <cstdint>

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

}  // namespace haywire::glass::agent_protocol
