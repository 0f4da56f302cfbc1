#include "haywire/vm/registers.h"

#include <algorithm>

#include <fmt/format.h>

namespace haywire::vm {

Result<std::vector<Vcpu>> vcpus(qmp::Client& client) {
  auto reply = client.execute("query-cpus-fast");
  if (!reply) return std::unexpected(reply.error());
  if (!reply->is_array()) return fail(ParseError{"query-cpus-fast reply", "expected an array"});
  std::vector<Vcpu> out;
  for (const qmp::Json& cpu : *reply) {
    if (!cpu.is_object() || !cpu.contains("cpu-index") || !cpu["cpu-index"].is_number_integer())
      return fail(ParseError{"query-cpus-fast reply", "a vCPU without an integer cpu-index"});
    Vcpu v{.cpu_index = cpu["cpu-index"].get<int>()};
    if (cpu.contains("qom-path") && cpu["qom-path"].is_string()) v.qom_path = cpu["qom-path"].get<std::string>();
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const Vcpu& a, const Vcpu& b) { return a.cpu_index < b.cpu_index; });
  return out;
}

Result<arch::ControlRegisters> control_registers(qmp::Client& client, int cpu_index) {
  auto text = client.hmp("info registers", cpu_index);
  if (!text) return std::unexpected(text.error());
  auto parsed = arch::parse_info_registers(*text, cpu_index);
  if (!parsed) return std::unexpected(std::move(parsed.error()).with_context(fmt::format("vCPU {}", cpu_index)));
  // With cpu-index QEMU prints just that vCPU; anything else means the monitor answered for
  // another one (an old QEMU ignoring cpu-index) and the values would be wrong.
  for (const arch::ControlRegisters& regs : *parsed)
    if (regs.cpu == cpu_index) return regs;
  return fail(NotFound{fmt::format("registers of vCPU {} in QEMU's `info registers`", cpu_index),
                       "QEMU printed another vCPU; list them with query-cpus-fast"});
}

Result<std::vector<arch::ControlRegisters>> all_control_registers(qmp::Client& client) {
  auto list = vcpus(client);
  if (!list) return std::unexpected(list.error());
  std::vector<arch::ControlRegisters> out;
  for (const Vcpu& v : *list) {
    auto regs = control_registers(client, v.cpu_index);
    if (!regs) return std::unexpected(regs.error());
    out.push_back(*regs);
  }
  return out;
}

unsigned phys_bits(qmp::Client& client, const Vcpu& vcpu) {
  constexpr unsigned kArchitecturalMax = 52;
  if (vcpu.qom_path.empty()) return kArchitecturalMax;
  auto reply = client.execute("qom-get", {{"path", vcpu.qom_path}, {"property", "phys-bits"}});
  if (!reply || !reply->is_number_unsigned()) return kArchitecturalMax;
  const auto bits = reply->get<std::uint64_t>();
  // QEMU accepts 32..52; anything else is not a width we can trust.
  return bits >= 32 && bits <= kArchitecturalMax ? static_cast<unsigned>(bits) : kArchitecturalMax;
}

Result<PagingState> paging_state(qmp::Client& client, int cpu_index) {
  auto list = vcpus(client);
  if (!list) return std::unexpected(list.error());
  auto it = std::find_if(list->begin(), list->end(), [&](const Vcpu& v) { return v.cpu_index == cpu_index; });
  if (it == list->end())
    return fail(NotFound{fmt::format("vCPU {}", cpu_index), fmt::format("the VM has {} vCPU(s)", list->size())});
  auto regs = control_registers(client, cpu_index);
  if (!regs) return std::unexpected(regs.error());
  auto mode = arch::paging_mode(*regs, phys_bits(client, *it));
  if (!mode) return std::unexpected(mode.error());
  return PagingState{*mode, regs->cr3_value(), *regs};
}

Result<PagingState> resolve_paging(const Target& target, const PagingOverrides& overrides) {
  if (overrides.levels && *overrides.levels != 4 && *overrides.levels != 5)
    return fail(InvalidArgument{fmt::format("--levels must be 4 or 5, not {}", *overrides.levels)});
  if (overrides.cr3 && overrides.levels)
    return PagingState{arch::PagingMode::make(*overrides.levels), *overrides.cr3, std::nullopt};
  auto client = connect_qmp(target);
  if (!client) return std::unexpected(client.error());
  auto state = paging_state(*client, overrides.cpu_index);
  if (!state)
    return std::unexpected(std::move(state.error()).with_context(fmt::format("VM '{}'", target.label())));
  if (overrides.cr3) state->cr3 = *overrides.cr3;
  if (overrides.levels)
    state->mode = arch::PagingMode::make(*overrides.levels, state->mode.phys_bits(), state->mode.nx_enabled());
  return state;
}

}  // namespace haywire::vm
