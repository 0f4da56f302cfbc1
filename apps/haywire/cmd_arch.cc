// haywire translate | pagetable: guest page tables from the host.
#include <array>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include "cli.h"
#include "haywire/arch/address_space.h"
#include "haywire/arch/enumerate.h"
#include "haywire/base/parse.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/registers.h"

namespace haywire::cli {
namespace {

// A line of --stdin longer than this is not an address.
constexpr std::size_t kMaxStdinLine = 256;

struct PagingOptions {
  std::string cr3;
  int levels = 0;  // 0: from CR4.LA57 of vCPU 0
  void add_to(CLI::App& app) {
    app.add_option("--cr3", cr3, "walk this CR3 (e.g. a process's) instead of vCPU 0's current one");
    app.add_option("--levels", levels, "4 or 5 paging levels; with --cr3, no QMP is needed")->check(CLI::IsMember({4, 5}));
  }
  [[nodiscard]] Result<vm::PagingOverrides> overrides() const {
    vm::PagingOverrides o;
    if (!cr3.empty()) {
      auto v = parse_u64(cr3);
      if (!v) return fail(InvalidArgument{"--cr3: " + v.error().message()});
      o.cr3 = Cr3(*v);
    }
    if (levels != 0) o.levels = levels;
    return o;
  }
};

std::string describe_paging(const vm::PagingState& p) {
  std::string from = p.registers ? fmt::format("vCPU {}", p.registers->cpu) : std::string("--cr3");
  if (p.registers && p.registers->cr3 != p.cr3.value()) from = "--cr3";
  return fmt::format("CR3 {} ({}, {}-level, MAXPHYADDR {})", hex(p.cr3.value()), from, p.mode.levels(),
                     p.mode.phys_bits());
}

nlohmann::json flags_json(arch::PageFlags flags) {
  nlohmann::json out = nlohmann::json::array();
  for (std::string_view name : flags.names()) out.push_back(name);
  return out;
}

std::string page_size_name(std::uint64_t size) {
  if (size == arch::kPage1G) return "1G";
  if (size == arch::kPage2M) return "2M";
  return "4K";
}

// --- translate -------------------------------------------------------------------------------

struct TranslateOptions {
  TargetOptions target;
  PagingOptions paging;
  std::vector<std::string> vas;
  bool from_stdin = false, json = false;
};

// {"va", "pa", "page_size", "flags", "error"} in this order: the shape issue 3 specifies.
std::string translation_json(const arch::Translation& t) {
  nlohmann::ordered_json j;
  j["va"] = hex(t.va.value());
  j["pa"] = t.mapped() ? nlohmann::ordered_json(hex(t.pa.value())) : nlohmann::ordered_json(nullptr);
  j["page_size"] = t.mapped() ? nlohmann::ordered_json(t.page_size) : nlohmann::ordered_json(nullptr);
  j["flags"] = flags_json(t.flags);
  j["error"] = t.mapped() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(t.fault->describe());
  return j.dump();
}

Result<std::vector<VirtAddr>> parse_addresses(const TranslateOptions& o) {
  std::vector<VirtAddr> out;
  auto add = [&](std::string_view text) -> Result<void> {
    auto v = parse_u64(text);
    if (!v) return fail(InvalidArgument{fmt::format("not a virtual address: '{}' (use 0x hex or decimal)", text)});
    out.emplace_back(*v);
    return {};
  };
  for (const std::string& text : o.vas)
    if (auto ok = add(text); !ok) return std::unexpected(ok.error());
  if (o.from_stdin) {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.size() > kMaxStdinLine) return fail(InvalidArgument{"a line of --stdin is too long to be an address"});
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      const auto last = line.find_last_not_of(" \t\r");
      if (auto ok = add(std::string_view(line).substr(first, last - first + 1)); !ok) return std::unexpected(ok.error());
    }
  }
  if (out.empty()) return fail(InvalidArgument{"give at least one virtual address (or --stdin)"});
  return out;
}

int translate(TranslateOptions o) {
  // `translate --qmp PATH VA...`: the first positional is an address, not a VM name.
  if (!o.target.qmp.empty() && !o.target.name.empty()) {
    o.vas.insert(o.vas.begin(), o.target.name);
    o.target.name.clear();
  }
  auto target = o.target.target();
  if (!target) return report(target.error());
  auto overrides = o.paging.overrides();
  if (!overrides) return report(overrides.error());
  auto vas = parse_addresses(o);
  if (!vas) return report(vas.error());
  auto att = vm::attach(*target);
  if (!att) return report(att.error());
  auto paging = vm::resolve_paging(*target, *overrides);
  if (!paging) return report(paging.error());

  arch::TranslationCache cache(1 << 14);
  const arch::AddressSpace space(att->ram, paging->mode, paging->cr3, &cache);
  constexpr std::size_t kChunk = 4096;  // translate and print in chunks: bounded memory
  std::vector<arch::Translation> out(kChunk);
  bool all_mapped = true;
  if (!o.json) std::printf("# %s\n", describe_paging(*paging).c_str());
  for (std::size_t at = 0; at < vas->size(); at += kChunk) {
    const auto chunk = std::span(*vas).subspan(at, std::min(kChunk, vas->size() - at));
    space.translate_batch(chunk, out);
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      const arch::Translation& t = out[i];
      all_mapped = all_mapped && t.mapped();
      if (o.json) {
        std::printf("%s\n", translation_json(t).c_str());
      } else if (t.mapped()) {
        std::printf("%s -> %s  %s  %s\n", hex(t.va.value()).c_str(), hex(t.pa.value()).c_str(),
                    page_size_name(t.page_size).c_str(), fmt::format("{}", fmt::join(t.flags.names(), " ")).c_str());
      } else {
        std::printf("%s not mapped: %s\n", hex(t.va.value()).c_str(), t.fault->describe().c_str());
      }
    }
  }
  return all_mapped ? kOk : kFailed;
}

// --- pagetable -------------------------------------------------------------------------------

struct PagetableOptions {
  TargetOptions target;
  PagingOptions paging;
  bool json = false, kernel = false, user = false, paused = false;
  std::size_t max_ranges = 1u << 22;
};

// Pauses the VM (if running) for the scope, so that the tables are from one instant.
class PauseGuard {
 public:
  static Result<PauseGuard> pause(const vm::Target& target) {
    auto client = vm::connect_qmp(target);
    if (!client) return std::unexpected(client.error());
    auto status = qmp::query_status(*client);
    if (!status) return std::unexpected(status.error());
    if (status->running)
      if (auto s = qmp::stop(*client); !s) return std::unexpected(s.error());
    return PauseGuard(std::move(*client), status->running);
  }
  // QEMU serves one QMP client at a time: let go of it while the VM stays paused.
  void release() { client_.reset(); }
  Result<void> resume(const vm::Target& target) {
    if (!resume_) return {};
    resume_ = false;
    if (!client_) {
      auto c = vm::connect_qmp(target);
      if (!c) return std::unexpected(c.error());
      client_.emplace(std::move(*c));
    }
    return qmp::cont(*client_);
  }

 private:
  PauseGuard(qmp::Client client, bool resume) : client_(std::move(client)), resume_(resume) {}
  std::optional<qmp::Client> client_;
  bool resume_ = false;
};

// One past the range's last byte, as hex: "0x10000000000000000" for a range that ends at the
// top of the address space (2^64 does not fit in 64 bits, but it does in a string).
std::string end_text(const arch::MappedRange& r) {
  return r.va_last().value() == ~0ull ? std::string("0x10000000000000000") : hex(r.va_last().value() + 1);
}

void print_ranges_table(const arch::Enumeration& e) {
  std::printf("%-16s %-16s %-14s %9s %4s %s\n", "VA", "VA END", "PA", "SIZE", "PAGE",
              "FLAGS (present writable user nx accessed dirty global)");
  for (const arch::MappedRange& r : e.ranges)
    std::printf("%016llx %s %014llx %9s %4s %s\n", static_cast<unsigned long long>(r.va.value()),
                fmt::format("{:0>16}", end_text(r).substr(2)).c_str(), static_cast<unsigned long long>(r.pa.value()),
                human_bytes(r.size).c_str(), page_size_name(r.page_size).c_str(), r.flags.letters().c_str());
}

// One JSON object. The ranges are written directly rather than built as a json tree first:
// a kernel with 100,000 ranges is listed in milliseconds instead of seconds.
void print_listing_json(const std::string& label, const vm::PagingState& paging, const arch::Enumeration& e) {
  nlohmann::json skipped = nlohmann::json::array();
  for (const arch::SkippedSubtree& s : e.skipped)
    skipped.push_back({{"va", hex(s.va.value())}, {"span", s.span}, {"error", s.fault.describe()}});
  nlohmann::json head = {{"vm", label}, {"cr3", hex(paging.cr3.value())}, {"levels", paging.mode.levels()}};
  nlohmann::json tail = {{"skipped", skipped}, {"skipped_total", e.skipped_total}, {"mapped_bytes", e.mapped_bytes},
                         {"tables_expanded", e.tables_expanded}, {"tables_replayed", e.tables_replayed},
                         {"truncated", e.truncated},
                         {"truncated_reason", e.truncated ? nlohmann::json(e.truncated_reason) : nlohmann::json(nullptr)}};
  std::string out = head.dump();
  out.pop_back();  // the closing brace: ranges and the tail follow
  out += ",\"ranges\":[";
  std::array<std::string, 128> flag_text;  // by PageFlags::bits(): a handful of distinct values
  auto flags_text = [&](arch::PageFlags flags) -> const std::string& {
    std::string& text = flag_text[flags.bits() & 127];
    if (text.empty()) text = flags_json(flags).dump();
    return text;
  };
  for (std::size_t i = 0; i < e.ranges.size(); ++i) {
    const arch::MappedRange& r = e.ranges[i];
    fmt::format_to(std::back_inserter(out),
                   "{}{{\"va\":\"0x{:x}\",\"va_end\":\"{}\",\"pa\":\"0x{:x}\",\"size\":{},\"page_size\":{},\"flags\":{}}}",
                   i == 0 ? "" : ",", r.va.value(), end_text(r), r.pa.value(), r.size, r.page_size,
                   flags_text(r.flags));
  }
  out += "],";
  out += tail.dump().substr(1);
  std::printf("%s\n", out.c_str());
}

int pagetable(const PagetableOptions& o) {
  auto target = o.target.target();
  if (!target) return report(target.error());
  if (o.kernel && o.user) return report(InvalidArgument{"--kernel and --user exclude each other"});
  auto overrides = o.paging.overrides();
  if (!overrides) return report(overrides.error());
  auto att = vm::attach(*target);
  if (!att) return report(att.error());
  std::optional<PauseGuard> pause;
  if (o.paused) {
    auto p = PauseGuard::pause(*target);
    if (!p) return report(p.error());
    pause.emplace(std::move(*p));
    pause->release();
  }
  auto paging = vm::resolve_paging(*target, *overrides);
  arch::Enumeration e;
  if (paging) {
    const arch::Half half = o.kernel ? arch::Half::kKernel : o.user ? arch::Half::kUser : arch::Half::kAll;
    e = arch::enumerate(att->ram, paging->mode, paging->cr3, {.half = half, .max_ranges = o.max_ranges});
  }
  if (pause)
    if (auto r = pause->resume(*target); !r) return report(std::move(r.error()).with_context("resuming the VM"));
  if (!paging) return report(paging.error());

  if (o.json) {
    print_listing_json(att->label, *paging, e);
  } else {
    std::printf("# %s\n", describe_paging(*paging).c_str());
    print_ranges_table(e);
    std::printf("# %zu ranges, %s mapped, %llu tables read%s\n", e.ranges.size(), human_bytes(e.mapped_bytes).c_str(),
                static_cast<unsigned long long>(e.tables_expanded),
                e.tables_replayed != 0 ? fmt::format(", {} links to tables already listed", e.tables_replayed).c_str() : "");
    for (const arch::SkippedSubtree& s : e.skipped)
      std::printf("# skipped %s+%s: %s\n", hex(s.va.value()).c_str(), human_bytes(s.span).c_str(), s.fault.describe().c_str());
    if (e.skipped_total > e.skipped.size())
      std::printf("# ... and %llu more skipped subtrees\n", static_cast<unsigned long long>(e.skipped_total - e.skipped.size()));
  }
  if (e.truncated) {
    std::fprintf(stderr, "haywire: listing incomplete: %s (raise --max-ranges)\n", e.truncated_reason.c_str());
    return kFailed;
  }
  return kOk;
}

}  // namespace

void register_arch_commands(CLI::App& app) {
  static TranslateOptions tr;
  auto* t = app.add_subcommand("translate", "Translate guest-virtual addresses to guest-physical (page walk)");
  tr.target.add_to(*t);
  t->add_option("va", tr.vas, "virtual addresses (0x hex or decimal)");
  tr.paging.add_to(*t);
  t->add_flag("--stdin", tr.from_stdin, "also read addresses from stdin, one per line");
  t->add_flag("--json", tr.json, "one JSON object per address, one per line");
  t->footer("Exit status 1 if any address is not mapped (each one still gets its answer).");
  t->callback(run([] { return translate(tr); }));

  static PagetableOptions pt;
  auto* p = app.add_subcommand("pagetable", "List every mapped range of an address space (like QEMU's info tlb)");
  pt.target.add_to(*p);
  pt.paging.add_to(*p);
  p->add_flag("--kernel", pt.kernel, "only the kernel half");
  p->add_flag("--user", pt.user, "only the user half");
  p->add_flag("--paused", pt.paused, "pause the VM around the walk (QMP stop/cont): tables from one instant");
  p->add_option("--max-ranges", pt.max_ranges, "stop listing after this many ranges")->capture_default_str();
  p->add_flag("--json", pt.json, "one JSON object");
  p->callback(run([] { return pagetable(pt); }));
}

}  // namespace haywire::cli
