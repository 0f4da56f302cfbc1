// x86-64 long-mode paging: the vocabulary every page-table user shares. A PagingMode says
// how to walk (4 or 5 levels, which physical-address bits exist, whether NX is enabled); a
// Translation is the answer for one virtual address: where it lands, how big the page is,
// what it may do, or precisely why it is not mapped.
//
// Levels are numbered as the hardware nests them: 5 = PML5, 4 = PML4, 3 = PDPT, 2 = PD,
// 1 = PT. A 1 GiB page is a leaf at level 3, a 2 MiB page a leaf at level 2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "haywire/base/types.h"

namespace haywire::arch {

// Page-table entry bits (Intel SDM vol. 3, 4.5).
namespace pte {
inline constexpr std::uint64_t kPresent = 1ull << 0;
inline constexpr std::uint64_t kWritable = 1ull << 1;
inline constexpr std::uint64_t kUser = 1ull << 2;
inline constexpr std::uint64_t kWriteThrough = 1ull << 3;
inline constexpr std::uint64_t kCacheDisable = 1ull << 4;
inline constexpr std::uint64_t kAccessed = 1ull << 5;
inline constexpr std::uint64_t kDirty = 1ull << 6;
inline constexpr std::uint64_t kPageSize = 1ull << 7;  // PS in PDPTE/PDE; PAT in a PTE
inline constexpr std::uint64_t kGlobal = 1ull << 8;
inline constexpr std::uint64_t kNoExecute = 1ull << 63;
}  // namespace pte

inline constexpr unsigned kEntriesPerTable = 512;
inline constexpr std::uint64_t kPage4K = 1ull << 12;
inline constexpr std::uint64_t kPage2M = 1ull << 21;
inline constexpr std::uint64_t kPage1G = 1ull << 30;

// Bytes one entry at `level` covers (level 1: 4 KiB ... level 5: 256 TiB).
constexpr std::uint64_t level_span(int level) { return 1ull << (12 + 9 * (level - 1)); }
constexpr unsigned level_index(std::uint64_t va, int level) {
  return static_cast<unsigned>((va >> (12 + 9 * (level - 1))) & 511);
}
// "PML5", "PML4", "PDPT", "PD", "PT".
std::string_view level_name(int level);

// The effective permissions of a mapping (writable and user only if every level allows it,
// NX if any level forbids execution) plus the leaf's accessed/dirty/global bits.
class PageFlags {
 public:
  enum Bit : std::uint8_t {
    kPresent = 1 << 0,
    kWritable = 1 << 1,
    kUser = 1 << 2,
    kNoExecute = 1 << 3,
    kAccessed = 1 << 4,
    kDirty = 1 << 5,
    kGlobal = 1 << 6,
  };
  constexpr PageFlags() = default;
  constexpr explicit PageFlags(std::uint8_t bits) : bits_(bits) {}
  [[nodiscard]] constexpr bool has(Bit b) const { return (bits_ & b) != 0; }
  [[nodiscard]] constexpr std::uint8_t bits() const { return bits_; }
  constexpr bool operator==(const PageFlags&) const = default;
  // {"present", "writable", "user", "nx", "accessed", "dirty", "global"}, those set, in order.
  [[nodiscard]] std::vector<std::string_view> names() const;
  // Compact, fixed-width: "PWUXADG" with '-' for clear bits (for tables people read).
  [[nodiscard]] std::string letters() const;

 private:
  std::uint8_t bits_ = 0;
};

enum class FaultKind : std::uint8_t {
  kNonCanonical,     // the address is not sign-extended from bit 47 (4-level) or 56 (5-level)
  kNotPresent,       // the entry at `level` has P = 0
  kReservedBit,      // the entry at `level` sets a bit the CPU reserves (a #PF with RSVD)
  kTableOutsideRam,  // the table `level` points into is not guest RAM (hostile or corrupt)
  kPageOutsideRam,   // translation succeeded but the page is not RAM (MMIO, hole): reads only
};

struct Fault {
  FaultKind kind = FaultKind::kNotPresent;
  int level = 0;             // where the walk stopped (0 for kNonCanonical / kPageOutsideRam)
  PhysAddr entry_addr;       // guest-physical address of the offending entry (of the table
                             // itself for kTableOutsideRam)
  std::uint64_t entry = 0;   // its value (0 if it could not be read)
  PhysAddr page;             // kPageOutsideRam: the guest-physical address that is not RAM
  bool operator==(const Fault&) const = default;
  // One line: "not present at PD level (entry 0x0 at 0x1234018)".
  [[nodiscard]] std::string describe() const;
};

struct Translation {
  VirtAddr va;
  PhysAddr pa;                  // valid when mapped()
  std::uint64_t page_size = 0;  // 4096, 2097152 or 1073741824 when mapped()
  PageFlags flags;
  std::optional<Fault> fault;   // set exactly when the address is not mapped
  [[nodiscard]] bool mapped() const { return !fault.has_value(); }
};

// How to walk one address space's tables. Built from control registers (see
// control_registers.h) or by hand (tests, `--levels`).
class PagingMode {
 public:
  // `phys_bits` is MAXPHYADDR (QEMU's phys-bits, 36..52): address bits above it are reserved
  // in every entry. `nx_enabled` is EFER.NXE: without it bit 63 is reserved too.
  static PagingMode make(int levels, unsigned phys_bits = 52, bool nx_enabled = true);
  static PagingMode four_level(unsigned phys_bits = 52) { return make(4, phys_bits); }
  static PagingMode five_level(unsigned phys_bits = 52) { return make(5, phys_bits); }

  [[nodiscard]] int levels() const { return levels_; }
  [[nodiscard]] unsigned phys_bits() const { return phys_bits_; }
  [[nodiscard]] bool nx_enabled() const { return nx_enabled_; }
  // Bits 12..MAXPHYADDR-1: where a table or page address lives in an entry (and in CR3).
  [[nodiscard]] std::uint64_t address_mask() const { return address_mask_; }
  // Bits that must be clear in a present entry at `level` (large: PS set at level 2 or 3).
  [[nodiscard]] std::uint64_t reserved_mask(int level, bool large) const;
  // The first table: CR3 without PCID/PWT/PCD/no-flush bits.
  [[nodiscard]] PhysAddr root(Cr3 cr3) const { return PhysAddr(cr3.value() & address_mask_); }
  [[nodiscard]] bool is_canonical(VirtAddr va) const;
  // Sign-extends the top implemented bit (47 or 56): the canonical form of a linear index.
  [[nodiscard]] VirtAddr canonical(std::uint64_t linear) const;
  // Bytes of virtual address space: 2^48 or 2^57.
  [[nodiscard]] std::uint64_t va_bits() const { return levels_ == 5 ? 57 : 48; }
  // The lowest kernel-half address: 0xffff800000000000 or 0xff00000000000000.
  [[nodiscard]] VirtAddr kernel_half_start() const { return canonical(1ull << (va_bits() - 1)); }

  bool operator==(const PagingMode&) const = default;

 private:
  int levels_ = 4;
  unsigned phys_bits_ = 52;
  bool nx_enabled_ = true;
  std::uint64_t address_mask_ = 0;
  std::uint64_t reserved_common_ = 0;  // MAXPHYADDR..51, and 63 without NXE
};

}  // namespace haywire::arch
