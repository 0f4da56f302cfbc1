// haywire mem read | snapshot | find
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "cli.h"
#include "haywire/arch/address_space.h"
#include "haywire/base/fd.h"
#include "haywire/base/parse.h"
#include "haywire/guest/search.h"
#include "haywire/guest/snapshot.h"
#include "haywire/vm/registers.h"

namespace haywire::cli {
namespace {

constexpr std::uint64_t kMaxReadLen = 256ull << 20;

Result<vm::Attachment> attach(const TargetOptions& t) {
  auto target = t.target();
  if (!target) return std::unexpected(target.error());
  return vm::attach(*target);
}

Result<void> write_all(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(io_error("write"));
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return {};
}

void print_hex_dump(std::uint64_t base, std::span<const std::byte> bytes) {
  for (std::size_t line = 0; line < bytes.size(); line += 16) {
    std::string hexpart, text;
    for (std::size_t i = line; i < line + 16; ++i) {
      if (i < bytes.size()) {
        auto b = static_cast<unsigned char>(bytes[i]);
        hexpart += fmt::format("{:02x} ", b);
        text += (b >= 0x20 && b < 0x7f) ? static_cast<char>(b) : '.';
      } else {
        hexpart += "   ";
      }
      if (i == line + 7) hexpart += ' ';
    }
    std::printf("%016llx  %s |%s|\n", static_cast<unsigned long long>(base + line), hexpart.c_str(), text.c_str());
  }
}

struct ReadOptions {
  TargetOptions target;
  std::string pa, va, len, format = "hex";
  std::string cr3;  // --va only
  int levels = 0;   // --va only; 0: from vCPU 0's CR4
};

std::string hex_string(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) out += fmt::format("{:02x}", static_cast<unsigned>(b));
  return out;
}

// `mem read --va`: guest-virtual memory through the guest's page tables, page by page. Prints
// the bytes that were readable and says where and why the first unreadable byte failed.
int mem_read_va(const ReadOptions& o, std::uint64_t len) {
  auto va = parse_u64(o.va);
  if (!va) return report(InvalidArgument{"--va: " + va.error().message()});
  vm::PagingOverrides overrides;
  if (!o.cr3.empty()) {
    auto cr3 = parse_u64(o.cr3);
    if (!cr3) return report(InvalidArgument{"--cr3: " + cr3.error().message()});
    overrides.cr3 = Cr3(*cr3);
  }
  if (o.levels != 0) overrides.levels = o.levels;
  auto target = o.target.target();
  if (!target) return report(target.error());
  auto att = vm::attach(*target);
  if (!att) return report(att.error());
  auto paging = vm::resolve_paging(*target, overrides);
  if (!paging) return report(paging.error());
  const arch::AddressSpace space(att->ram, paging->mode, paging->cr3);
  std::vector<std::byte> buf(len);
  const arch::ReadResult r = space.read(VirtAddr(*va), buf);
  const auto got = std::span<const std::byte>(buf).first(r.bytes_read);
  const std::string fault_text =
      r.fault ? fmt::format("read {} of {} bytes; first fault at {}: {}", r.bytes_read, len, hex(r.fault->va.value()),
                            r.fault->fault.describe())
              : std::string();
  if (o.format == "raw") {
    if (auto w = write_all(1, got); !w) return report(w.error());
  } else if (o.format == "json") {
    nlohmann::json fault = nullptr;
    if (r.fault) fault = {{"va", hex(r.fault->va.value())}, {"error", r.fault->fault.describe()}};
    print_json({{"vm", att->label}, {"va", hex(*va)}, {"cr3", hex(paging->cr3.value())}, {"len", len},
                {"read", r.bytes_read}, {"hex", hex_string(got)}, {"fault", fault}});
  } else {
    print_hex_dump(*va, got);
  }
  if (!r.complete()) {
    if (o.format != "json") std::fprintf(stderr, "haywire: %s\n", fault_text.c_str());
    return kFailed;
  }
  return kOk;
}

int mem_read(const ReadOptions& o) {
  if (o.pa.empty() == o.va.empty()) return report(InvalidArgument{"give --pa (guest-physical) or --va (guest-virtual)"});
  if (o.va.empty() && (!o.cr3.empty() || o.levels != 0))
    return report(InvalidArgument{"--cr3 and --levels go with --va"});
  auto len = parse_size(o.len);
  if (!len) return report(len.error());
  if (*len == 0 || *len > kMaxReadLen) return report(InvalidArgument{"--len must be between 1 and 256M"});
  if (o.format != "hex" && o.format != "raw" && o.format != "json")
    return report(InvalidArgument{"--format must be hex, raw or json"});
  if (!o.va.empty()) return mem_read_va(o, *len);
  auto addr = parse_u64(o.pa);
  if (!addr) return report(addr.error());
  auto att = attach(o.target);
  if (!att) return report(att.error());
  auto bytes = att->ram.read_pa(PhysAddr(*addr), *len);
  if (!bytes) return report(bytes.error());
  if (o.format == "raw") {
    if (auto w = write_all(1, *bytes); !w) return report(w.error());
    return kOk;
  }
  if (o.format == "json") {
    print_json({{"vm", att->label}, {"pa", hex(*addr)}, {"len", *len}, {"hex", hex_string(*bytes)}});
    return kOk;
  }
  print_hex_dump(*addr, *bytes);
  return kOk;
}

struct SnapshotOptions {
  TargetOptions target;
  std::string output;
  bool paused = false, json = false;
  int retries = 4;
};

int mem_snapshot(const SnapshotOptions& o) {
  auto att = attach(o.target);
  if (!att) return report(att.error());
  guest::Snapshot snap;
  auto rep = o.paused ? vm::snapshot_paused(*o.target.target(), att->ram, snap)
                      : guest::take_snapshot(att->ram, snap, {.max_retries = o.retries});
  if (!rep) return report(rep.error());
  auto out = open_file(o.output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!out) return report(out.error());
  if (auto w = write_all(out->get(), snap.bytes()); !w) return report(w.error());
  double ms = std::chrono::duration<double, std::milli>(rep->elapsed).count();
  if (o.json) {
    nlohmann::json regions = nlohmann::json::array();
    for (const RamRegion& r : att->ram.layout().regions())
      regions.push_back({{"start", hex(r.start.value())}, {"size", r.size}, {"file_offset", hex(r.file_offset)}});
    print_json({{"vm", att->label}, {"file", o.output}, {"bytes", snap.size()}, {"paused", o.paused},
                {"consistent", rep->consistent}, {"torn_pages", rep->torn_pages},
                {"recopied_pages", rep->recopied_pages}, {"copy_ms", ms}, {"layout", regions}});
  } else {
    std::printf("wrote %s of '%s' to %s in %.1f ms (%s)\n", human_bytes(snap.size()).c_str(), att->label.c_str(),
                o.output.c_str(), ms,
                o.paused ? "VM paused: one instant"
                         : (rep->consistent ? fmt::format("consistent per page, {} pages re-copied", rep->recopied_pages)
                                            : fmt::format("{} pages still torn", rep->torn_pages.size())).c_str());
    std::printf("the file is in backend-file order; guest-physical layout:\n");
    for (const RamRegion& r : att->ram.layout().regions())
      std::printf("  guest %s-%s at file offset %s\n", hex(r.start.value()).c_str(), hex(r.end().value() - 1).c_str(),
                  hex(r.file_offset).c_str());
  }
  return rep->consistent ? kOk : kFailed;
}

struct FindOptions {
  TargetOptions target;
  std::string pattern;
  bool is_hex = false, json = false;
  std::size_t max = 100;
};

Result<std::vector<std::byte>> decode_hex(std::string_view text) {
  std::vector<std::byte> out;
  std::string digits;
  for (char c : text)
    if (c != ' ' && c != ':') digits += c;
  if (digits.empty() || digits.size() % 2 != 0) return fail(InvalidArgument{"--hex needs an even number of hex digits"});
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    auto b = parse_hex(std::string_view(digits).substr(i, 2));
    if (!b) return fail(InvalidArgument{fmt::format("not hex: '{}'", digits.substr(i, 2))});
    out.push_back(static_cast<std::byte>(*b));
  }
  return out;
}

int mem_find(FindOptions o) {
  // `mem find --qmp PATH PATTERN`: the one positional is the pattern, not a VM name.
  if (!o.target.qmp.empty() && o.pattern.empty()) std::swap(o.pattern, o.target.name);
  std::vector<std::byte> pattern;
  if (o.is_hex) {
    auto decoded = decode_hex(o.pattern);
    if (!decoded) return report(decoded.error());
    pattern = std::move(*decoded);
  } else {
    auto b = std::as_bytes(std::span(o.pattern.data(), o.pattern.size()));
    pattern.assign(b.begin(), b.end());
  }
  if (pattern.empty()) return report(InvalidArgument{"empty pattern"});
  auto att = attach(o.target);
  if (!att) return report(att.error());
  auto hits = guest::find_all(att->ram, pattern, o.max);
  if (o.json) {
    nlohmann::json addrs = nlohmann::json::array();
    for (PhysAddr a : hits) addrs.push_back(hex(a.value()));
    print_json({{"vm", att->label}, {"pattern_len", pattern.size()}, {"hits", addrs}, {"truncated", hits.size() >= o.max}});
  } else {
    for (PhysAddr a : hits) std::printf("%s\n", hex(a.value()).c_str());
    if (hits.empty()) std::fprintf(stderr, "haywire: pattern not found in %s of guest RAM\n", human_bytes(att->ram.size()).c_str());
  }
  return hits.empty() ? kFailed : kOk;
}

}  // namespace

void register_mem_commands(CLI::App& app) {
  auto* mem = app.add_subcommand("mem", "Read, snapshot and search guest-physical memory");
  mem->require_subcommand(1);

  static ReadOptions read;
  auto* rd = mem->add_subcommand("read", "Read guest-physical (--pa) or guest-virtual (--va) memory");
  read.target.add_to(*rd);
  rd->add_option("--pa", read.pa, "guest-physical address (decimal or 0x hex)");
  rd->add_option("--va", read.va, "guest-virtual address, through vCPU 0's page tables (or --cr3's)");
  rd->add_option("--len", read.len, "bytes to read (e.g. 64, 4K)")->required();
  rd->add_option("--cr3", read.cr3, "with --va: walk this CR3 instead of vCPU 0's current one");
  rd->add_option("--levels", read.levels, "with --va: 4 or 5 paging levels (with --cr3: no QMP needed)")
      ->check(CLI::IsMember({4, 5}));
  rd->footer("With --va, the bytes up to the first unreadable one are printed and the rest is reported on stderr "
             "(exit status 1): how many bytes were readable and why the next one was not.");
  rd->add_option("--format", read.format, "hex (dump), raw (exact bytes on stdout) or json")->capture_default_str();
  rd->callback(run([] { return mem_read(read); }));

  static SnapshotOptions snap;
  auto* sn = mem->add_subcommand("snapshot", "Copy all guest RAM to a file, with torn-read detection");
  snap.target.add_to(*sn);
  sn->add_option("-o,--output", snap.output, "output file")->required();
  sn->add_flag("--paused", snap.paused, "pause the VM around the copy (QMP stop/cont): one consistent instant");
  sn->add_option("--retries", snap.retries, "re-copies of a page written during its copy")->capture_default_str();
  sn->add_flag("--json", snap.json, "JSON report");
  sn->callback(run([] { return mem_snapshot(snap); }));

  static FindOptions find;
  auto* fd = mem->add_subcommand("find", "Search guest RAM for a string or bytes; prints guest-physical addresses");
  find.target.add_to(*fd);
  fd->add_option("pattern", find.pattern, "text to find (or hex bytes with --hex)");
  fd->add_flag("--hex", find.is_hex, "PATTERN is hex bytes, e.g. 'de ad be ef'");
  fd->add_option("--max", find.max, "stop after this many hits")->capture_default_str();
  fd->add_flag("--json", find.json, "JSON output");
  fd->callback(run([] { return mem_find(find); }));
}

}  // namespace haywire::cli
