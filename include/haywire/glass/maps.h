// /proc/PID/maps: the target's memory regions, classified, and which of them write tracking can
// cover. The text is the kernel's, but paths are chosen by the target (file names, anonymous
// VMA names), so the parser treats it as untrusted: bounded lines, strict fields, no NULs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "haywire/base/error.h"
#include "haywire/base/types.h"

namespace haywire::glass {

enum class RegionKind {
  kHeap,        // [heap]
  kStack,       // [stack] (also the old [stack:TID])
  kAnonymous,   // no path, or a named anonymous VMA ([anon:NAME])
  kFileBacked,  // a private mapping of a file
  kShared,      // any MAP_SHARED mapping (file, memfd, shmem, [anon_shmem:NAME])
  kVdso,        // [vdso]
  kVvar,        // [vvar], [vvar_vclock]
  kVsyscall,    // [vsyscall]
  kSpecial,     // another bracketed kernel mapping ([uprobes], ...)
};
[[nodiscard]] std::string_view to_string(RegionKind kind);

struct MemoryRegion {
  VirtAddr start;
  VirtAddr end;             // exclusive; start < end, both page-aligned
  std::string permissions;  // exactly 4 characters, "rw-p"
  std::uint64_t offset = 0;
  std::string device;       // "fd:00"
  std::uint64_t inode = 0;
  std::string path;         // empty for anonymous memory; kernel-escaped, may end " (deleted)"
  RegionKind kind = RegionKind::kAnonymous;

  [[nodiscard]] std::uint64_t size() const { return end - start; }
  [[nodiscard]] bool readable() const { return permissions[0] == 'r'; }
  [[nodiscard]] bool writable() const { return permissions[1] == 'w'; }
  [[nodiscard]] bool executable() const { return permissions[2] == 'x'; }
  [[nodiscard]] bool shared() const { return permissions[3] == 's'; }
};

// Lines longer than this are rejected (PATH_MAX plus the fixed fields, with room for escapes).
inline constexpr std::size_t kMaxMapsLine = 8192;

// Parses the whole text; any malformed line fails the parse with its line number (the kernel
// never writes one, so a bad line means the input is not what it claims to be). Regions come
// out sorted and non-overlapping: a line that overlaps or precedes the one before fails the
// parse, or, when `out_of_order` is given, is left out and counted there.
Result<std::vector<MemoryRegion>> parse_maps(std::string_view text, std::size_t* out_of_order = nullptr);
// Reads and parses /proc/PID/maps. NotFound if the process is gone, PermissionDenied if not ours.
// The kernel writes that file a page at a time and lets the process change its layout in
// between, so a long one read while regions split or merge can show a region overlapping the
// one before: such a read is repeated (up to 4 reads), then such lines are left out (the
// layout is sorted and non-overlapping, and the next read has them).
Result<std::vector<MemoryRegion>> read_maps(Pid pid);

// The layout's size counters from /proc/PID/statm: every mapping (total_vm) and the private
// writable ones (data_vm), in pages. Any mmap, munmap, brk or mremap moves the first; an
// mprotect that makes private memory writable or read-only moves the second. Reading them
// costs ~5 us against ~60-80 us for the maps, so a tracker re-reads the maps only when they
// (or a layout message) say something changed.
struct VmSizes {
  std::uint64_t total_pages = 0;
  std::uint64_t data_pages = 0;
  friend bool operator==(const VmSizes&, const VmSizes&) = default;
};
// "size resident shared text lib data dt": seven decimal counters, nothing else.
Result<VmSizes> parse_statm(std::string_view text);
Result<VmSizes> read_vm_sizes(Pid pid);

// The number of threads (field 20 of /proc/PID/stat). The command name before it is the
// target's choice (spaces and parentheses included), so fields are counted after the last ')'.
Result<std::uint32_t> parse_stat_threads(std::string_view text);
Result<std::uint32_t> read_thread_count(Pid pid);

// Whether write-protect tracking can cover the region: writable, private, and not a kernel
// special mapping (vdso/vvar/vsyscall/...). Shared memory is skipped because userfaultfd-wp on
// shmem needs UFFD_FEATURE_WP_HUGETLBFS_SHMEM and writes through another mapping would escape it.
[[nodiscard]] bool is_trackable(const MemoryRegion& region);
[[nodiscard]] std::vector<MemoryRegion> trackable_regions(std::span<const MemoryRegion> regions);

}  // namespace haywire::glass
