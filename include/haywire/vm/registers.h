// A VM's vCPU control registers over QMP: which vCPUs exist (`query-cpus-fast`), their
// CR0/CR3/CR4/EFER (HMP `info registers` with `cpu-index`, parsed by arch/), and the CPU
// model's physical-address width (`qom-get <cpu> phys-bits`). Everything a page walk needs
// to know about a live VM besides its RAM.
//
// Registers change as the guest runs (CR3 on every context switch): a value is a sample.
// Pause the VM (qmp::stop) when it must stay true while you use it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "haywire/arch/control_registers.h"
#include "haywire/arch/paging.h"
#include "haywire/base/error.h"
#include "haywire/qmp/client.h"
#include "haywire/vm/attach.h"

namespace haywire::vm {

struct Vcpu {
  int cpu_index = 0;
  std::string qom_path;  // e.g. "/machine/unattached/device[0]"
};

// Every vCPU QEMU has, in cpu-index order. ParseError on a malformed reply.
Result<std::vector<Vcpu>> vcpus(qmp::Client& client);

// One vCPU's control registers. QmpCommandFailed if QEMU has no such vCPU.
Result<arch::ControlRegisters> control_registers(qmp::Client& client, int cpu_index);
// Every vCPU's, in cpu-index order.
Result<std::vector<arch::ControlRegisters>> all_control_registers(qmp::Client& client);

// MAXPHYADDR of the vCPU's model (QEMU's phys-bits property; 40 for TCG's default models).
// 52, the architectural maximum, when QEMU does not say: entries are then checked only for
// the bits no x86-64 CPU has.
unsigned phys_bits(qmp::Client& client, const Vcpu& vcpu);

// What a walk of vCPU `cpu_index`'s current address space needs.
struct PagingState {
  arch::PagingMode mode;
  Cr3 cr3;
  // The vCPU's registers the state came from; absent when CR3 and the paging levels were
  // both given by hand (no QMP round-trip at all).
  std::optional<arch::ControlRegisters> registers;
};
// NotFound (with a hint) if the vCPU does not exist or is not in long mode with paging on.
Result<PagingState> paging_state(qmp::Client& client, int cpu_index = 0);

// What a person may fix on the command line instead of asking the vCPU.
struct PagingOverrides {
  std::optional<Cr3> cr3;    // another address space (a process's CR3) than the current one
  std::optional<int> levels; // 4 or 5: with `cr3`, skips QMP (MAXPHYADDR 52, NX enabled)
  int cpu_index = 0;
};
// The paging state of `target`: from vCPU `cpu_index` over a short QMP session (QEMU serves
// one QMP client at a time), with the overrides applied. InvalidArgument for levels other
// than 4 or 5.
Result<PagingState> resolve_paging(const Target& target, const PagingOverrides& overrides = {});

}  // namespace haywire::vm
