#include "haywire/arch/control_registers.h"

#include <array>
#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace haywire::arch {
namespace {

constexpr std::size_t kMaxHexDigits = 16;

struct Partial {
  int cpu = 0;
  std::array<std::optional<std::uint64_t>, 4> values;  // CR0, CR3, CR4, EFER
  [[nodiscard]] bool any() const {
    for (const auto& v : values)
      if (v) return true;
    return false;
  }
  [[nodiscard]] bool all() const {
    for (const auto& v : values)
      if (!v) return false;
    return true;
  }
};

constexpr std::array<std::string_view, 4> kNames = {"CR0=", "CR3=", "CR4=", "EFER="};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The hex number right at the start of `text` (up to the next space), if it is one.
std::optional<std::uint64_t> hex_token(std::string_view text) {
  std::size_t n = 0;
  while (n < text.size() && !is_space(text[n])) ++n;
  if (n == 0 || n > kMaxHexDigits) return std::nullopt;
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + n, value, 16);
  if (ec != std::errc() || ptr != text.data() + n) return std::nullopt;
  return value;
}

// "CPU#12" at the start of a line.
std::optional<int> cpu_header(std::string_view line) {
  constexpr std::string_view kCpu = "CPU#";
  if (!line.starts_with(kCpu)) return std::nullopt;
  line.remove_prefix(kCpu.size());
  int cpu = 0;
  auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), cpu, 10);
  if (ec != std::errc() || ptr == line.data() || cpu < 0) return std::nullopt;
  return cpu;
}

// Records every "NAME=hex" token of `line` that starts the line or follows a space, so
// that "CR0=" does not match inside a longer name such as "XCR0=".
Result<void> scan_line(std::string_view line, Partial& cpu) {
  for (std::size_t k = 0; k < kNames.size(); ++k) {
    std::size_t at = 0;
    while ((at = line.find(kNames[k], at)) != std::string_view::npos) {
      if (at == 0 || is_space(line[at - 1])) {
        auto value = hex_token(line.substr(at + kNames[k].size()));
        if (!value)
          return fail(ParseError{"info registers", fmt::format("vCPU {}: {} is not followed by a hex number", cpu.cpu,
                                                                kNames[k].substr(0, kNames[k].size() - 1))});
        cpu.values[k] = *value;
      }
      at += kNames[k].size();
    }
  }
  return {};
}

Result<void> finish(const Partial& p, std::vector<ControlRegisters>& out) {
  if (!p.any()) return {};
  if (!p.all()) {
    std::string missing;
    for (std::size_t k = 0; k < kNames.size(); ++k)
      if (!p.values[k]) missing += (missing.empty() ? "" : ", ") + std::string(kNames[k].substr(0, kNames[k].size() - 1));
    return fail(ParseError{"info registers", fmt::format("vCPU {} has no {}", p.cpu, missing)});
  }
  if (out.size() >= kMaxCpusInText)
    return fail(ParseError{"info registers", fmt::format("more than {} vCPUs", kMaxCpusInText)});
  out.push_back(ControlRegisters{.cpu = p.cpu, .cr0 = *p.values[0], .cr3 = *p.values[1], .cr4 = *p.values[2],
                                 .efer = *p.values[3]});
  return {};
}

}  // namespace

Result<std::vector<ControlRegisters>> parse_info_registers(std::string_view text, int default_cpu) {
  std::vector<ControlRegisters> out;
  Partial current{.cpu = default_cpu};
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (auto cpu = cpu_header(line)) {
      if (auto done = finish(current, out); !done) return std::unexpected(done.error());
      current = Partial{.cpu = *cpu};
      continue;
    }
    if (auto scanned = scan_line(line, current); !scanned) return std::unexpected(scanned.error());
  }
  if (auto done = finish(current, out); !done) return std::unexpected(done.error());
  if (out.empty())
    return fail(ParseError{"info registers", "no CR0/CR3/CR4/EFER found (is this QEMU's x86 `info registers`?)"});
  return out;
}

Result<PagingMode> paging_mode(const ControlRegisters& regs, unsigned phys_bits) {
  if (!regs.paging() || !regs.pae() || !regs.long_mode())
    return fail(NotFound{
        fmt::format("x86-64 paging on vCPU {} (CR0={:x} CR4={:x} EFER={:x})", regs.cpu, regs.cr0, regs.cr4, regs.efer),
        "the vCPU is not in long mode with paging on: the guest may still be booting, or is not a 64-bit guest"});
  return PagingMode::make(regs.la57() ? 5 : 4, phys_bits, regs.nx());
}

}  // namespace haywire::arch
