#include "haywire/arch/paging.h"

#include <algorithm>

#include <fmt/format.h>

namespace haywire::arch {

std::string_view level_name(int level) {
  switch (level) {
    case 5: return "PML5";
    case 4: return "PML4";
    case 3: return "PDPT";
    case 2: return "PD";
    case 1: return "PT";
    default: return "?";
  }
}

namespace {
struct FlagName {  // NOLINT(clang-analyzer-optin.performance.Padding): a constant table of a dozen rows
  PageFlags::Bit bit;
  std::string_view name;
  char letter;
};
constexpr FlagName kFlagNames[] = {
    {PageFlags::kPresent, "present", 'P'}, {PageFlags::kWritable, "writable", 'W'},
    {PageFlags::kUser, "user", 'U'},       {PageFlags::kNoExecute, "nx", 'X'},
    {PageFlags::kAccessed, "accessed", 'A'}, {PageFlags::kDirty, "dirty", 'D'},
    {PageFlags::kGlobal, "global", 'G'},
};
}  // namespace

std::vector<std::string_view> PageFlags::names() const {
  std::vector<std::string_view> out;
  for (const FlagName& f : kFlagNames)
    if (has(f.bit)) out.push_back(f.name);
  return out;
}

std::string PageFlags::letters() const {
  std::string out;
  for (const FlagName& f : kFlagNames) out += has(f.bit) ? f.letter : '-';
  return out;
}

std::string Fault::describe() const {
  switch (kind) {
    case FaultKind::kNonCanonical:
      return "non-canonical address (the bits above the top implemented bit are not all equal)";
    case FaultKind::kNotPresent:
      return fmt::format("not present at {} level (entry 0x{:x} at 0x{:x})", level_name(level), entry,
                         entry_addr.value());
    case FaultKind::kReservedBit:
      return fmt::format("reserved bit set in {} entry 0x{:x} at 0x{:x}", level_name(level), entry,
                         entry_addr.value());
    case FaultKind::kTableOutsideRam:
      return fmt::format("{} table at 0x{:x} is outside guest RAM (a corrupt or hostile table pointer)",
                         level_name(level), entry_addr.value());
    case FaultKind::kPageOutsideRam:
      return fmt::format("page maps guest-physical 0x{:x}, which is not RAM (device memory or a hole)",
                         page.value());
  }
  return "unknown fault";
}

PagingMode PagingMode::make(int levels, unsigned phys_bits, bool nx_enabled) {
  PagingMode m;
  m.levels_ = levels == 5 ? 5 : 4;
  m.phys_bits_ = std::clamp(phys_bits, 32u, 52u);
  m.nx_enabled_ = nx_enabled;
  // Bits 12..MAXPHYADDR-1.
  m.address_mask_ = ((1ull << m.phys_bits_) - 1) & ~(kPage4K - 1);
  // Bits MAXPHYADDR..51 are reserved in every paging-structure entry; 52..62 are ignored
  // (or protection keys), so they are neither address nor reserved.
  m.reserved_common_ = ((1ull << 52) - 1) & ~((1ull << m.phys_bits_) - 1);
  if (!nx_enabled) m.reserved_common_ |= pte::kNoExecute;
  return m;
}

std::uint64_t PagingMode::reserved_mask(int level, bool large) const {
  std::uint64_t mask = reserved_common_;
  if (level >= 4) mask |= pte::kPageSize;  // PS must be 0 in PML5E/PML4E
  // A large page's address is aligned to its size; the low bits above PAT (bit 12) are
  // reserved: 13..29 for 1 GiB, 13..20 for 2 MiB.
  if (large && level == 3) mask |= (kPage1G - 1) & ~((kPage4K << 1) - 1);
  if (large && level == 2) mask |= (kPage2M - 1) & ~((kPage4K << 1) - 1);
  return mask;
}

bool PagingMode::is_canonical(VirtAddr va) const {
  const unsigned top = static_cast<unsigned>(va_bits()) - 1;  // 47 or 56
  const auto high = static_cast<std::int64_t>(va.value()) >> top;
  return high == 0 || high == -1;
}

VirtAddr PagingMode::canonical(std::uint64_t linear) const {
  const unsigned shift = 64 - static_cast<unsigned>(va_bits());
  return VirtAddr(static_cast<std::uint64_t>(static_cast<std::int64_t>(linear << shift) >> shift));
}

}  // namespace haywire::arch
