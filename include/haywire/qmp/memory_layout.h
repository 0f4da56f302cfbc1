// Guest-physical RAM layout from QEMU's own description or, failing that, its rules.
// Pure functions: no QMP connection needed, so they are unit-tested on recorded output.
#pragma once

#include <cstdint>
#include <string_view>

#include "haywire/base/error.h"
#include "haywire/base/ram_layout.h"

namespace haywire::qmp {

// Parses HMP `info mtree -f`: the FlatView whose address spaces include `AS "memory", root:
// system`, its regions named `backend_id` (ram or rom, with their `@offset`, no @ meaning 0).
// Adjacent pieces contiguous in the file are merged, and so are pieces around a hole in the
// legacy window 0xA0000-0xFFFFF (ROM/VGA over RAM) that is equally long in the file: those
// bytes are RAM in the file whatever the firmware has mapped over them. Bounded: hostile or
// truncated text is a ParseError, never a crash.
Result<RamLayout> parse_mtree(std::string_view text, std::string_view backend_id,
                              std::uint64_t file_size);

enum class MachineKind { kQ35, kPc, kUnknown };
// "pc-q35-7.2-machine" -> kQ35, "pc-i440fx-7.2-machine" -> kPc.
MachineKind machine_kind(std::string_view qom_type);

// QEMU's placement when the monitor is not available:
//  q35: below_4g = ram >= 0xB0000000 ? 0x80000000 : ram
//  pc:  below_4g = ram >= 0xE0000000 ? 0xC0000000 : ram
// RAM [0, below_4g) at offset 0, the rest at guest 4 GiB at offset below_4g.
Result<RamLayout> fallback_layout(MachineKind kind, std::uint64_t ram_size);

}  // namespace haywire::qmp
