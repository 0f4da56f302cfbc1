// Attaching to a VM's RAM: by name (a VM `haywire vm up` started; no QMP round-trip needed,
// everything is in its vm.json) or by QMP socket (any QEMU with a shared
// memory-backend-file, started by hand: the path, size and layout come from QMP).
#pragma once

#include <string>

#include "haywire/base/error.h"
#include "haywire/guest/ram.h"
#include "haywire/guest/snapshot.h"
#include "haywire/qmp/client.h"

namespace haywire::vm {

struct Target {
  std::string name;      // a VM started by `haywire vm up`
  std::string qmp_path;  // or a QMP socket of any QEMU
  // Exactly one of the two. InvalidArgument otherwise.
  static Result<Target> make(std::string name, std::string qmp_path);
  [[nodiscard]] std::string label() const { return name.empty() ? qmp_path : name; }
};

struct Attachment {
  std::string label;
  std::string qmp_path;
  std::string mem_path;
  std::string backend_id;
  guest::GuestRam ram;
};

Result<Attachment> attach(const Target& target);

// A QMP session to the target's command socket (hold it briefly: QEMU serves one at a time).
Result<qmp::Client> connect_qmp(const Target& target);

// A snapshot taken with the VM paused (QMP stop/cont around the copy) so that all of RAM
// is from one instant. The VM is resumed even if the copy fails, unless it was paused already.
Result<guest::SnapshotReport> snapshot_paused(const Target& target, const guest::GuestRam& ram,
                                              guest::Snapshot& into);

}  // namespace haywire::vm
