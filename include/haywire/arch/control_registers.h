// The control registers that decide how a vCPU translates addresses, and the parser for
// QEMU's `info registers` text they come from. Pure functions: fetching the text over QMP
// lives in vm/registers.h, so this layer needs no QEMU connection and is fuzzed directly.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "haywire/arch/paging.h"
#include "haywire/base/error.h"
#include "haywire/base/types.h"

namespace haywire::arch {

struct ControlRegisters {
  int cpu = 0;  // QEMU's cpu-index
  std::uint64_t cr0 = 0;
  std::uint64_t cr3 = 0;
  std::uint64_t cr4 = 0;
  std::uint64_t efer = 0;

  [[nodiscard]] bool paging() const { return (cr0 & (1ull << 31)) != 0; }      // CR0.PG
  [[nodiscard]] bool pae() const { return (cr4 & (1ull << 5)) != 0; }          // CR4.PAE
  [[nodiscard]] bool la57() const { return (cr4 & (1ull << 12)) != 0; }        // CR4.LA57
  [[nodiscard]] bool pcid() const { return (cr4 & (1ull << 17)) != 0; }        // CR4.PCIDE
  [[nodiscard]] bool long_mode() const { return (efer & (1ull << 10)) != 0; }  // EFER.LMA
  [[nodiscard]] bool nx() const { return (efer & (1ull << 11)) != 0; }         // EFER.NXE
  [[nodiscard]] Cr3 cr3_value() const { return Cr3(cr3); }
  bool operator==(const ControlRegisters&) const = default;
};

// At most this many vCPUs from one text (QEMU's own limit is far lower).
inline constexpr std::size_t kMaxCpusInText = 4096;

// Parses QEMU's `info registers` (one vCPU, with `cpu-index`) or `info registers -a` (all of
// them): a "CPU#n" line opens each vCPU, then "CR0=", "CR3=", "CR4=" and "EFER=" tokens in
// hex. Lines may end in "\r\n". Text without a "CPU#" line is taken as vCPU `default_cpu`.
// ParseError if no vCPU has all four registers, or one has some and not others.
Result<std::vector<ControlRegisters>> parse_info_registers(std::string_view text, int default_cpu = 0);

// How this vCPU walks its tables: 5 levels if CR4.LA57, NX reserved unless EFER.NXE.
// NotFound (with what to do) unless it is in long mode with paging on (CR0.PG, CR4.PAE,
// EFER.LMA): a guest still in its boot loader or a 32-bit guest has no x86-64 page tables.
Result<PagingMode> paging_mode(const ControlRegisters& regs, unsigned phys_bits = 52);

}  // namespace haywire::arch
