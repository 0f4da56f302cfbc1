#include "haywire/glass/maps.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

#include "haywire/base/fd.h"
#include "haywire/base/parse.h"

namespace haywire::glass {
namespace {

bool parse_hex_field(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 16) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool parse_dec_field(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 10);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Next space-delimited field; single spaces separate the fixed fields.
std::string_view next_field(std::string_view& rest) {
  std::size_t space = rest.find(' ');
  std::string_view field = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  return field;
}

bool valid_permissions(std::string_view p) {
  return p.size() == 4 && (p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') &&
         (p[2] == 'x' || p[2] == '-') && (p[3] == 'p' || p[3] == 's');
}

bool valid_device(std::string_view d) {
  std::size_t colon = d.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == d.size()) return false;
  std::uint64_t major = 0;
  std::uint64_t minor = 0;
  return parse_hex_field(d.substr(0, colon), major) && parse_hex_field(d.substr(colon + 1), minor);
}

RegionKind classify(const MemoryRegion& r) {
  const std::string& p = r.path;
  if (p == "[vdso]") return RegionKind::kVdso;
  if (p.starts_with("[vvar")) return RegionKind::kVvar;
  if (p == "[vsyscall]") return RegionKind::kVsyscall;
  if (r.shared()) return RegionKind::kShared;
  if (p == "[heap]") return RegionKind::kHeap;
  if (p == "[stack]" || p.starts_with("[stack:")) return RegionKind::kStack;
  if (p.empty() || p.starts_with("[anon:")) return RegionKind::kAnonymous;
  if (p.starts_with("[")) return RegionKind::kSpecial;
  return RegionKind::kFileBacked;
}

Result<MemoryRegion> parse_line(std::string_view line, std::size_t number) {
  auto bad = [&](std::string_view why) {
    return fail(ParseError{"/proc/PID/maps", fmt::format("line {}: {}", number, why)});
  };
  if (line.size() > kMaxMapsLine) return bad("line too long");
  if (line.find('\0') != std::string_view::npos) return bad("NUL byte");
  std::string_view rest = line;
  std::string_view range = next_field(rest);
  std::size_t dash = range.find('-');
  if (dash == std::string_view::npos) return bad("address range without '-'");
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  if (!parse_hex_field(range.substr(0, dash), start) || !parse_hex_field(range.substr(dash + 1), end))
    return bad("bad hex address");
  if (start >= end) return bad("start is not below end");
  if (start % kPageSize != 0 || end % kPageSize != 0) return bad("range not page-aligned");
  MemoryRegion region;
  region.start = VirtAddr(start);
  region.end = VirtAddr(end);
  std::string_view perms = next_field(rest);
  if (!valid_permissions(perms)) return bad("bad permissions");
  region.permissions = std::string(perms);
  if (!parse_hex_field(next_field(rest), region.offset)) return bad("bad offset");
  std::string_view device = next_field(rest);
  if (!valid_device(device)) return bad("bad device");
  region.device = std::string(device);
  if (!parse_dec_field(next_field(rest), region.inode)) return bad("bad inode");
  // The kernel pads to a column before the path; the path itself may contain spaces.
  std::size_t path_start = rest.find_first_not_of(' ');
  if (path_start != std::string_view::npos) region.path = std::string(rest.substr(path_start));
  region.kind = classify(region);
  return region;
}

}  // namespace

std::string_view to_string(RegionKind kind) {
  switch (kind) {
    case RegionKind::kHeap: return "heap";
    case RegionKind::kStack: return "stack";
    case RegionKind::kAnonymous: return "anonymous";
    case RegionKind::kFileBacked: return "file";
    case RegionKind::kShared: return "shared";
    case RegionKind::kVdso: return "vdso";
    case RegionKind::kVvar: return "vvar";
    case RegionKind::kVsyscall: return "vsyscall";
    case RegionKind::kSpecial: return "special";
  }
  return "unknown";
}

Result<std::vector<MemoryRegion>> parse_maps(std::string_view text, std::size_t* out_of_order) {
  std::vector<MemoryRegion> regions;
  std::size_t number = 0;
  while (!text.empty()) {
    std::size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    ++number;
    if (line.empty()) continue;
    auto region = parse_line(line, number);
    if (!region) return std::unexpected(std::move(region.error()));
    if (!regions.empty() && region->start < regions.back().end) {
      if (out_of_order == nullptr)
        return fail(ParseError{"/proc/PID/maps", fmt::format("line {}: overlaps or precedes the line before", number)});
      ++*out_of_order;
      continue;
    }
    regions.push_back(std::move(*region));
  }
  return regions;
}

Result<std::vector<MemoryRegion>> read_maps(Pid pid) {
  std::string path = fmt::format("/proc/{}/maps", pid.value());
  constexpr int kReads = 4;
  for (int attempt = 1;; ++attempt) {
    // Large processes have many thousands of regions; 64 MiB bounds a hostile or runaway one.
    auto text = read_text_file(path, std::size_t{64} << 20);
    if (!text) {
      if (text.error().is<FileNotFound>())
        return fail(NotFound{fmt::format("process {}", pid.value()), "check the PID (is the process still running?)"});
      return std::unexpected(std::move(text.error()));
    }
    std::size_t out_of_order = 0;
    auto regions = parse_maps(*text, &out_of_order);
    if (!regions) return std::unexpected(std::move(regions.error()).with_context(path));
    if (out_of_order == 0 || attempt == kReads) return regions;
  }
}

namespace {

// Reads /proc/PID/<file> (a one-line counter file) and parses it; NotFound once the process is gone.
template <typename Parse>
auto read_proc_file(Pid pid, std::string_view file, Parse parse) -> decltype(parse(std::string_view{})) {
  std::string path = fmt::format("/proc/{}/{}", pid.value(), file);
  auto text = read_text_file(path, 4096);
  if (!text) {
    if (text.error().is<FileNotFound>())
      return fail(NotFound{fmt::format("process {}", pid.value()), "check the PID (is the process still running?)"});
    return std::unexpected(std::move(text.error()));
  }
  auto parsed = parse(*text);
  if (!parsed) return std::unexpected(std::move(parsed.error()).with_context(path));
  return parsed;
}

}  // namespace

Result<VmSizes> parse_statm(std::string_view text) {
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  std::uint64_t fields[7] = {};
  for (int i = 0; i < 7; ++i) {
    const std::size_t space = text.find(' ');
    if ((space == std::string_view::npos) != (i == 6))
      return fail(ParseError{"/proc/PID/statm", "expected seven counters separated by single spaces"});
    auto value = parse_u64(text.substr(0, space));
    if (!value) return fail(ParseError{"/proc/PID/statm", fmt::format("counter {} is not a number", i + 1)});
    fields[i] = *value;
    text = i == 6 ? std::string_view{} : text.substr(space + 1);
  }
  return VmSizes{.total_pages = fields[0], .data_pages = fields[5]};
}

Result<VmSizes> read_vm_sizes(Pid pid) { return read_proc_file(pid, "statm", parse_statm); }

Result<std::uint32_t> parse_stat_threads(std::string_view text) {
  const std::size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return fail(ParseError{"/proc/PID/stat", "no ')' closing the command name"});
  std::string_view rest = text.substr(paren + 1);
  // " S ppid pgrp ...": field 3 (state) comes first; field 20 is the thread count.
  constexpr int kThreadsField = 20;
  for (int field = 3; field < kThreadsField; ++field) {
    if (rest.size() < 2 || rest[0] != ' ')
      return fail(ParseError{"/proc/PID/stat", fmt::format("field {} is missing", field)});
    const std::size_t next = rest.find(' ', 1);
    if (next == std::string_view::npos) return fail(ParseError{"/proc/PID/stat", fmt::format("field {} is missing", field + 1)});
    rest = rest.substr(next);
  }
  const std::size_t end = rest.find_first_of(" \n", 1);
  auto threads = parse_u64(rest.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
  if (!threads || *threads == 0 || *threads > std::numeric_limits<std::uint32_t>::max())
    return fail(ParseError{"/proc/PID/stat", "field 20 (threads) is not a thread count"});
  return static_cast<std::uint32_t>(*threads);
}

Result<std::uint32_t> read_thread_count(Pid pid) { return read_proc_file(pid, "stat", parse_stat_threads); }

bool is_trackable(const MemoryRegion& region) {
  if (!region.writable() || region.shared()) return false;
  switch (region.kind) {
    case RegionKind::kHeap:
    case RegionKind::kStack:
    case RegionKind::kAnonymous:
    case RegionKind::kFileBacked:
      return true;
    default:
      return false;
  }
}

std::vector<MemoryRegion> trackable_regions(std::span<const MemoryRegion> regions) {
  std::vector<MemoryRegion> out;
  std::copy_if(regions.begin(), regions.end(), std::back_inserter(out), is_trackable);
  return out;
}

}  // namespace haywire::glass
