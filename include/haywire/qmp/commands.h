// Typed helpers over Client for the commands Haywire needs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/ram_layout.h"
#include "haywire/qmp/client.h"

namespace haywire::qmp {

struct Status {
  std::string status;  // QEMU RunState: "running", "paused", "shutdown", "prelaunch", ...
  bool running = false;
};

struct MemDev {
  std::string id;                        // backend id, e.g. "mem0"
  std::string type;                      // QOM type, e.g. "memory-backend-file"
  std::uint64_t size = 0;
  bool share = false;
  std::optional<std::string> mem_path;   // memory-backend-file only (via qom-get)
};

Result<Status> query_status(Client& client);

// query-memdev, completed with each backend's QOM type (qom-list /objects) and, for
// memory-backend-file, its mem-path (qom-get /objects/<id> mem-path): QEMU 7.2's
// query-memdev does not report the path.
Result<std::vector<MemDev>> memdevs(Client& client);

// The first shared memory-backend-file (what Haywire can map), or NotFound with a hint that
// says how to start QEMU so that it has one.
Result<MemDev> shared_file_backend(Client& client);

// "pc-q35-7.2-machine" etc. (qom-get /machine type).
Result<std::string> machine_type(Client& client);

// Guest-physical layout of `backend` from `info mtree -f`; if the monitor output cannot be
// used, QEMU's placement rules for the machine type (see memory_layout.h).
Result<RamLayout> memory_layout(Client& client, const MemDev& backend);

Result<void> stop(Client& client);
Result<void> cont(Client& client);
Result<void> system_reset(Client& client);
Result<void> system_powerdown(Client& client);
// Asks QEMU to exit. The connection closing right after the reply is success.
Result<void> quit(Client& client);

}  // namespace haywire::qmp
