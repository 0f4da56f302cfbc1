// VM lifecycle: start the default guest (or any kernel) under QEMU with its RAM in /dev/shm,
// list, and tear down without leaving anything behind.
//
// Each VM has a run directory <runtime_root>/<name>/ holding:
//   vm.json        what `vm up` learnt (paths, pid, size, layout): read by every command
//   qmp.sock       QMP for commands (one client at a time in QEMU 7.2)
//   qmp-bus.sock   a second QMP socket reserved for a long-lived watcher (the control bus)
//   serial.log     the guest's serial console
//   guest-shell.sock  second serial port (guest /dev/ttyS1): the default test guest's root shell
//   qemu.log       QEMU's own stderr
//   qemu.pid       QEMU's pid
// and the RAM backend is /dev/shm/qemu_ram_<name>.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "haywire/base/error.h"
#include "haywire/base/ram_layout.h"

namespace haywire::vm {

using namespace std::chrono_literals;

enum class Accel { kAuto, kTcg, kKvm };
Result<Accel> parse_accel(std::string_view text);
// True when /dev/kvm is usable *and* the CPU advertises VMX or SVM, i.e. KVM would be
// hardware-accelerated. On machines where it is not, `auto` picks TCG.
bool kvm_accelerated();

struct VmSpec {
  std::string name;
  std::uint64_t mem_size = 256ull << 20;
  Accel accel = Accel::kAuto;
  int cpus = 1;
  std::string kernel;  // empty: the default guest image
  std::string initrd;
  std::string append;  // extra kernel command-line arguments
  std::string marker;  // haywire.marker for the default init (empty: the VM's name)
  std::chrono::milliseconds timeout = 60s;  // until QMP says running
  bool wait_ready = false;                  // also wait for the guest's ready line
};

struct VmInfo {
  std::string name;
  std::string run_dir;
  std::string qmp;      // command socket
  std::string bus_qmp;  // second socket for a watcher
  std::string mem_path;
  std::uint64_t mem_size = 0;
  std::string backend_id;  // "mem0"
  std::string serial_log;
  std::string qemu_log;
  int pid = 0;
  std::string accel;  // "tcg" or "kvm"
  std::string machine;
  std::string kernel;
  std::string initrd;
  std::string marker;
  RamLayout layout;
};

nlohmann::json to_json(const VmInfo& info);
Result<VmInfo> vm_info_from_json(const nlohmann::json& j);

// $HAYWIRE_RUN_DIR, else $XDG_RUNTIME_DIR/haywire, else /run/haywire (root) or
// /tmp/haywire-<uid>.
std::string runtime_root();
// Names are [A-Za-z0-9][A-Za-z0-9_.-]{0,47}: they become file and socket names.
Result<void> validate_name(std::string_view name);
std::string mem_path_for(std::string_view name);  // /dev/shm/qemu_ram_<name>

// The QEMU command line for `spec` with run directory `run_dir` (pure; unit-tested).
std::vector<std::string> qemu_command(const VmSpec& spec, const std::string& run_dir,
                                      const std::string& kernel, const std::string& initrd,
                                      bool use_kvm);

// Starts QEMU detached from the terminal and waits until QMP reports `running`.
Result<VmInfo> up(const VmSpec& spec);
// The VmInfo that `up` recorded.
Result<VmInfo> load(std::string_view name);

struct Listing {
  VmInfo info;
  std::string status;  // QEMU's run state, or "gone" (QEMU not running) or "busy" (QMP in use)
};
std::vector<Listing> list();

// `quit` over QMP, then SIGTERM, then SIGKILL (only the pid recorded for this VM, and only if
// that process still is this VM's QEMU); removes the RAM file, sockets and run directory.
// Works when QEMU already crashed, and on half-created VMs.
Result<void> down(std::string_view name, std::chrono::milliseconds grace = 5s);

// Waits until `needle` appears in the VM's serial log.
Result<void> wait_for_serial(const VmInfo& info, std::string_view needle,
                             std::chrono::milliseconds timeout);

// True if `pid` is alive (not a zombie) and its command line mentions `mem_path`.
bool is_vm_process(int pid, const std::string& mem_path);

}  // namespace haywire::vm
