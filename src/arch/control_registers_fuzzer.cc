// Fuzz target: `info registers` text comes from QEMU, but a compromised or unexpected QEMU
// (or a different architecture's monitor) could shape it. parse_info_registers must return
// values or a ParseError, never crash, and never return more vCPUs than its bound or one
// without all four registers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "haywire/arch/control_registers.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto regs = haywire::arch::parse_info_registers(text, 0);
  if (!regs) {
    if (!regs.error().is<haywire::ParseError>()) std::abort();
    return 0;
  }
  if (regs->empty() || regs->size() > haywire::arch::kMaxCpusInText) std::abort();
  for (const haywire::arch::ControlRegisters& r : *regs) {
    if (r.cpu < 0) std::abort();
    auto mode = haywire::arch::paging_mode(r, 40);
    if (mode && mode->levels() != (r.la57() ? 5 : 4)) std::abort();
    if (mode && (mode->root(r.cr3_value()).value() & 0xfff) != 0) std::abort();
  }
  return 0;
}
