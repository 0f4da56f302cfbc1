#include "haywire/qmp/memory_layout.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "haywire/base/parse.h"

namespace haywire::qmp {
namespace {

constexpr std::string_view kWhat = "`info mtree -f` output";
// Region lines are ~80 characters plus a QOM name; anything far longer cannot be one of
// ours and is skipped rather than copied or searched.
constexpr std::size_t kMaxLineBytes = 4096;
// A RAM backend appears as a handful of pieces (ROM shadows split it); thousands means the
// text is not what QEMU prints.
constexpr std::size_t kMaxBackendPieces = 4096;
constexpr std::uint64_t k4GiB = 0x1'0000'0000;
// The PC's legacy window: VGA, option ROMs and the BIOS shadow lie over RAM here.
constexpr std::uint64_t kLegacyWindowStart = 0xA'0000;
constexpr std::uint64_t kLegacyWindowEnd = 0x10'0000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Only these map guest-physical addresses onto backend bytes; "i/o" and "ramd" (device
// memory) never belong to a memory backend. "nv-" marks nonvolatile RAM (nvdimm).
bool maps_backend_bytes(std::string_view type) {
  if (type.starts_with("nv-")) type.remove_prefix(3);
  return type == "ram" || type == "rom" || type == "romd";
}

struct RegionLine {
  std::string_view start;
  std::string_view last;  // QEMU prints the inclusive end
  std::string_view type;
  std::string_view name;
  std::optional<std::string_view> offset;
};

// "  0000000000100000-000000007fffffff (prio 0, ram): mem0 @0000000000100000"
std::optional<RegionLine> split_region_line(std::string_view line) {
  line = trim(line);
  std::size_t dash = line.find('-');
  std::size_t open = line.find(" (prio ");
  std::size_t close = line.find("): ");
  if (dash == std::string_view::npos || open == std::string_view::npos ||
      close == std::string_view::npos || !(dash < open && open < close))
    return std::nullopt;
  RegionLine r;
  r.start = line.substr(0, dash);
  r.last = line.substr(dash + 1, open - dash - 1);
  std::string_view attributes = line.substr(open + 2, close - open - 2);  // "prio 0, ram"
  std::size_t comma = attributes.rfind(", ");
  if (comma == std::string_view::npos) return std::nullopt;
  r.type = attributes.substr(comma + 2);
  std::string_view rest = line.substr(close + 3);
  std::size_t at = rest.find(" @");
  r.name = trim(rest.substr(0, at));
  if (at != std::string_view::npos) {
    std::string_view offset = rest.substr(at + 2);
    r.offset = offset.substr(0, offset.find(' '));
  }
  return r;
}

Result<RamRegion> to_region(const RegionLine& line, std::size_t line_number) {
  auto fail_here = [&](std::string_view why) {
    return fail(ParseError{std::string(kWhat), fmt::format("line {}: {}", line_number, why)});
  };
  auto start = parse_hex(line.start);
  auto last = parse_hex(line.last);
  auto offset = line.offset ? parse_hex(*line.offset) : Result<std::uint64_t>(std::uint64_t{0});
  if (!start || !last || !offset) return fail_here("malformed address or @offset");
  if (*last < *start) return fail_here("region ends before it starts");
  if (*last == UINT64_MAX) return fail_here("region reaches the end of the 64-bit space");
  return RamRegion{PhysAddr(*start), *last - *start + 1, *offset};
}

// Until the firmware enables shadowing (and whenever VGA or an option ROM is mapped), QEMU's
// view shows devices over part of 0xA0000-0xFFFFF and the backend in pieces around them. The
// file still holds those bytes at the matching offsets, so a hole inside that window that is
// as long in the file as in guest-physical space is joined: the layout then does not depend
// on the guest's chipset registers at the moment it was asked (it is cached across boots).
std::vector<RamRegion> join_legacy_window_holes(std::vector<RamRegion> pieces) {
  std::sort(pieces.begin(), pieces.end(),
            [](const RamRegion& a, const RamRegion& b) { return a.start < b.start; });
  std::vector<RamRegion> joined;
  for (const RamRegion& piece : pieces) {
    if (!joined.empty()) {
      RamRegion& last = joined.back();
      std::uint64_t last_end = last.start.value() + last.size;  // no wrap: see to_region
      std::uint64_t last_file_end = last.file_offset + last.size;
      bool hole_in_window = last_end >= kLegacyWindowStart && piece.start.value() <= kLegacyWindowEnd &&
                            piece.start.value() > last_end;
      bool same_hole_in_file = last_file_end >= last.file_offset && piece.file_offset > last_file_end &&
                               piece.start.value() - last_end == piece.file_offset - last_file_end;
      if (hole_in_window && same_hole_in_file) {
        last.size = piece.start.value() + piece.size - last.start.value();
        continue;
      }
    }
    joined.push_back(piece);
  }
  return joined;
}

}  // namespace

Result<RamLayout> parse_mtree(std::string_view text, std::string_view backend_id,
                              std::uint64_t file_size) {
  if (backend_id.empty()) return fail(InvalidArgument{"memory backend id is empty"});

  // The system address space's FlatView is the one the CPU sees outside SMM; the
  // "cpu-smm-0" view lists the same RAM and must not be mistaken for it.
  bool in_block = false;
  bool block_is_system = false;
  bool found_system = false;
  std::vector<RamRegion> block_regions;
  std::optional<Error> block_error;  // reported only if the block turns out to be ours
  std::vector<RamRegion> system_regions;

  auto finish_block = [&]() -> Result<void> {
    if (in_block && block_is_system && !found_system) {
      if (block_error) return std::unexpected(std::move(*block_error));
      found_system = true;
      system_regions = std::move(block_regions);
    }
    in_block = false;
    block_is_system = false;
    block_regions.clear();
    block_error.reset();
    return {};
  };

  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos < text.size() && !found_system) {
    std::size_t newline = text.find('\n', pos);
    std::size_t end = newline == std::string_view::npos ? text.size() : newline;
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (raw.size() > kMaxLineBytes) continue;
    std::string_view line = trim(raw);

    if (line.starts_with("FlatView #")) {
      if (auto done = finish_block(); !done) return std::unexpected(std::move(done.error()));
      in_block = true;
      continue;
    }
    if (!in_block || line.empty()) continue;
    if (line.starts_with("AS ")) {
      if (line == R"(AS "memory", root: system)") block_is_system = true;
      continue;
    }
    auto region = split_region_line(line);
    if (!region || region->name != backend_id || !maps_backend_bytes(region->type)) continue;
    if (block_error) continue;
    if (block_regions.size() >= kMaxBackendPieces) {
      block_error = ParseError{std::string(kWhat),
                               fmt::format("more than {} pieces of '{}'", kMaxBackendPieces,
                                           backend_id)};
      continue;
    }
    auto piece = to_region(*region, line_number);
    if (!piece) {
      block_error = std::move(piece.error());
      continue;
    }
    block_regions.push_back(*piece);
  }
  if (auto done = finish_block(); !done) return std::unexpected(std::move(done.error()));

  if (!found_system)
    return fail(ParseError{std::string(kWhat),
                           R"(no FlatView for AS "memory", root: system (is this `info mtree -f`?))"});
  if (system_regions.empty())
    return fail(ParseError{std::string(kWhat),
                           fmt::format("the system FlatView has no RAM region named '{}'",
                                       backend_id)});
  auto layout = RamLayout::make(join_legacy_window_holes(std::move(system_regions)), file_size);
  if (!layout)
    return fail(ParseError{std::string(kWhat), layout.error().message()});
  return layout;
}

MachineKind machine_kind(std::string_view qom_type) {
  // QOM types are "pc-q35-7.2-machine", "pc-i440fx-7.2-machine" and, for very old machine
  // versions, "pc-1.3-machine" (all i440fx); the bare aliases "q35" and "pc" are accepted too.
  if (qom_type.find("q35") != std::string_view::npos) return MachineKind::kQ35;
  if (qom_type == "pc" || qom_type.starts_with("pc-") ||
      qom_type.find("i440fx") != std::string_view::npos)
    return MachineKind::kPc;
  return MachineKind::kUnknown;
}

Result<RamLayout> fallback_layout(MachineKind kind, std::uint64_t ram_size) {
  if (ram_size == 0) return fail(InvalidArgument{"RAM size is 0"});
  std::uint64_t below_4g = 0;
  switch (kind) {
    case MachineKind::kQ35:
      below_4g = ram_size >= 0xB000'0000 ? 0x8000'0000 : ram_size;
      break;
    case MachineKind::kPc:
      below_4g = ram_size >= 0xE000'0000 ? 0xC000'0000 : ram_size;
      break;
    case MachineKind::kUnknown:
      return fail(NotFound{"QEMU's RAM placement rules for this machine type",
                           "only q35 and pc (i440fx) are known; the layout must come from "
                           "`info mtree -f`"});
  }
  std::vector<RamRegion> regions{RamRegion{PhysAddr(0), below_4g, 0}};
  if (ram_size > below_4g) regions.push_back(RamRegion{PhysAddr(k4GiB), ram_size - below_4g, below_4g});
  return RamLayout::make(std::move(regions), ram_size);
}

}  // namespace haywire::qmp
