// Page tables of the real default guest (Debian kernel with KASLR, TCG -cpu max: 5-level
// paging when the CPU model offers LA57) against QEMU's own monitor: `gva2gpa` for
// translations, `x` for virtual reads, `info tlb` for the enumeration. The VM is paused
// (QMP stop) while both sides look, so they see the same tables. One VM for the binary.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "haywire/arch/address_space.h"
#include "haywire/arch/enumerate.h"
#include "haywire/arch/walker.h"
#include "haywire/guest/ram.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/registers.h"

namespace haywire::itest {
namespace {

using Json = nlohmann::json;

std::optional<qmp::Client> connect() {
  auto c = qmp::Client::connect(vmi().qmp, 5s);
  EXPECT_TRUE(c.has_value()) << c.error().message();
  if (!c) return std::nullopt;
  return std::move(*c);
}

std::string hex(std::uint64_t v) { return fmt::format("0x{:x}", v); }

// Keeps the VM paused for the scope. QEMU serves one QMP client at a time, so the guard lets
// go of its session (release()) while the CLI needs QMP, and reconnects to resume.
class PausedVm {
 public:
  PausedVm() {
    auto c = connect();
    if (c) {
      EXPECT_TRUE(qmp::stop(*c).has_value());
      client_.emplace(std::move(*c));
    }
  }
  ~PausedVm() {
    if (!client_) client_ = connect();
    if (client_) {
      EXPECT_TRUE(qmp::cont(*client_).has_value());
    }
  }
  qmp::Client& client() {
    if (!client_) client_ = connect();
    return *client_;
  }
  void release() { client_.reset(); }

 private:
  std::optional<qmp::Client> client_;
};

// QEMU's answer for one virtual address: the guest-physical address, or nullopt if unmapped.
struct QemuAnswer {
  bool ok = false;  // the monitor answered in a form we understand
  std::optional<std::uint64_t> pa;
};
QemuAnswer qemu_gva2gpa(qmp::Client& client, std::uint64_t va) {
  auto out = client.hmp("gva2gpa " + hex(va), 0);
  if (!out) return {};
  if (out->find("Unmapped") != std::string::npos) return {true, std::nullopt};
  static const std::regex kGpa("gpa: 0x([0-9a-f]+)");
  std::smatch m;
  if (!std::regex_search(*out, m, kGpa)) return {};
  auto pa = parse_hex(m[1].str());
  if (!pa) return {};
  return {true, *pa};
}

// QEMU's `x /Nxb VA` (virtual memory through the vCPU's tables), parsed into bytes; the
// bytes before the first line QEMU cannot access.
std::vector<unsigned char> qemu_x(qmp::Client& client, std::uint64_t va, int n) {
  std::vector<unsigned char> bytes;
  auto out = client.hmp(fmt::format("x /{}xb {}", n, hex(va)), 0);
  if (!out) return bytes;
  std::istringstream lines(*out);
  std::string line;
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos || line.find("Cannot access") != std::string::npos) break;
    std::istringstream words(line.substr(colon + 1));
    std::string w;
    while (words >> w) {
      auto v = parse_u64(w);
      if (!v || *v > 0xff) return bytes;
      bytes.push_back(static_cast<unsigned char>(*v));
    }
  }
  return bytes;
}

std::uint64_t rip(qmp::Client& client) {
  auto regs = client.hmp("info registers", 0);
  if (!regs) return 0;
  std::smatch m;
  if (!std::regex_search(*regs, m, std::regex("RIP=([0-9a-f]{16})"))) return 0;
  return parse_hex(m[1].str()).value_or(0);
}

// An address in the kernel image's text (x86-64 Linux maps it in the top 2 GiB, below the
// module area at 0xffffffffc0000000): vCPU 0's RIP, sampled while the guest runs until it lands
// there. The guest's own programs (companion, haywire-touch) put RIP in user space or a module
// now and then, and a paused VM would keep it there. Call it before pausing the VM; 0 if RIP
// never reached the image.
std::uint64_t kernel_text() {
  auto c = qmp::Client::connect(vmi().qmp, 5s);
  EXPECT_TRUE(c.has_value()) << c.error().message();
  if (!c) return 0;
  for (int attempt = 0; attempt < 500; ++attempt) {
    const std::uint64_t r = rip(*c);
    if (r >= 0xffffffff80000000ull && r < 0xffffffffc0000000ull) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ADD_FAILURE() << "vCPU 0's RIP never reached the kernel image in 500 samples";
  return 0;
}

vm::PagingState paging(qmp::Client& client) {
  auto state = vm::paging_state(client, 0);
  EXPECT_TRUE(state.has_value()) << state.error().message();
  return state.value_or(vm::PagingState{});
}

// Runs the CLI with `input` on stdin.
CommandResult run_cli_stdin(const std::vector<std::string>& args, const std::string& input) {
  const std::string in_path = "/tmp/haywire_itest_in_" + std::to_string(::getpid());
  std::ofstream(in_path) << input;
  std::string out_path = in_path + ".out", err_path = in_path + ".err";
  std::string cmd = std::string(HAYWIRE_CLI);
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " <" + in_path + " >" + out_path + " 2>" + err_path;
  int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    std::filesystem::remove(p);
    return s.str();
  };
  std::filesystem::remove(in_path);
  return CommandResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path), slurp(err_path)};
}

std::vector<Json> json_lines(const std::string& out) {
  std::vector<Json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(Json::parse(line));
  return lines;
}

// The kernel's direct map: the offset (va - pa) shared by the most mapped bytes of RAM in the
// kernel half, found from our own listing (KASLR moves it every boot). Only RAM counts:
// ioremap()ed device windows (q35's 256 MiB PCIe ECAM at 0xb0000000) can be as big.
std::uint64_t direct_map_offset(const arch::Enumeration& e, const arch::PagingMode& mode) {
  std::map<std::uint64_t, std::uint64_t> bytes_by_offset;
  for (const arch::MappedRange& r : e.ranges)
    if (r.va >= mode.kernel_half_start() && r.pa.value() + r.size <= vmi().mem_size)
      bytes_by_offset[r.va.value() - r.pa.value()] += r.size;
  return std::max_element(bytes_by_offset.begin(), bytes_by_offset.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

TEST(Arch, RegistersOfEveryVcpuComeFromQmp) {
  auto client = connect();
  ASSERT_TRUE(client.has_value());
  auto regs = vm::all_control_registers(*client);
  ASSERT_TRUE(regs.has_value()) << regs.error().message();
  ASSERT_EQ(regs->size(), 1u);
  EXPECT_TRUE(regs->front().long_mode());
  EXPECT_TRUE(regs->front().paging());
  auto state = vm::paging_state(*client, 0);
  ASSERT_TRUE(state.has_value()) << state.error().message();
  EXPECT_EQ(state->mode.levels(), regs->front().la57() ? 5 : 4);
  EXPECT_EQ(state->mode.phys_bits(), 40u) << "TCG's CPU models have 40 physical-address bits";
  EXPECT_FALSE(vm::paging_state(*client, 7).has_value());
}

TEST(Arch, TranslationsAgreeWithQemuGva2gpaOnThousandsOfAddresses) {
  auto ram = open_ram();
  const std::uint64_t text = kernel_text();
  ASSERT_NE(text, 0u);
  PausedVm paused;
  qmp::Client& client = paused.client();
  const vm::PagingState state = paging(client);
  const arch::Enumeration e = arch::enumerate(ram, state.mode, state.cr3);
  ASSERT_FALSE(e.ranges.empty());
  ASSERT_FALSE(e.truncated);
  const std::uint64_t direct = direct_map_offset(e, state.mode);

  std::mt19937_64 rng(2024);
  std::map<std::string, std::vector<std::uint64_t>> vas;
  // Kernel text around RIP, page by page, at random offsets.
  for (int k = -300; k < 300; ++k)
    vas["kernel text"].push_back((text & ~0xfffull) + static_cast<std::uint64_t>(k) * 4096 + (rng() & 0xff8));
  // The direct map over all of RAM (and a little past its end).
  for (int i = 0; i < 500; ++i) vas["direct map"].push_back(direct + rng() % (vmi().mem_size + (16u << 20)));
  // vmalloc and other 4 KiB kernel mappings that are neither the direct map nor the image.
  std::vector<const arch::MappedRange*> small;
  for (const arch::MappedRange& r : e.ranges) {
    const bool kernel = r.va >= state.mode.kernel_half_start();
    const bool in_direct = r.va.value() - r.pa.value() == direct;
    const bool near_text = r.va.value() > text - (1ull << 30) && r.va.value() < text + (1ull << 30);
    if (kernel && !in_direct && !near_text && r.page_size == arch::kPage4K) small.push_back(&r);
  }
  ASSERT_FALSE(small.empty()) << "no vmalloc-like mappings found";
  for (int i = 0; i < 400; ++i) {
    const arch::MappedRange& r = *small[rng() % small.size()];
    vas["vmalloc"].push_back(r.va.value() + rng() % r.size);
  }
  // Every mapping's edges: the last byte inside and the first byte after (often unmapped).
  for (std::size_t i = 0; i < 300; ++i) {
    const arch::MappedRange& r = e.ranges[rng() % e.ranges.size()];
    vas["range edges"].push_back(r.va_last().value());
    vas["range edges"].push_back(r.va_last().value() + 1);
  }
  // Random canonical addresses in both halves (almost all unmapped) and non-canonical ones.
  const std::uint64_t half = 1ull << (state.mode.va_bits() - 1);
  for (int i = 0; i < 300; ++i) {
    vas["random"].push_back(rng() % half);
    vas["random"].push_back(state.mode.kernel_half_start().value() + rng() % half);
  }
  for (int i = 0; i < 20; ++i) vas["non-canonical"].push_back(half + rng() % (1ull << 62));

  std::size_t compared = 0, mapped = 0;
  std::vector<std::uint64_t> all;
  for (const auto& [category, list] : vas) {
    std::size_t category_mapped = 0;
    for (std::uint64_t va : list) {
      const arch::Translation ours = arch::walk(ram, state.mode, state.cr3, VirtAddr(va));
      const QemuAnswer qemu = qemu_gva2gpa(client, va);
      ASSERT_TRUE(qemu.ok) << "gva2gpa " << hex(va);
      ASSERT_EQ(ours.mapped(), qemu.pa.has_value())
          << category << " " << hex(va) << ": ours " << (ours.mapped() ? hex(ours.pa.value()) : ours.fault->describe());
      if (ours.mapped()) {
        ASSERT_EQ(ours.pa.value(), *qemu.pa) << category << " " << hex(va);
        ++category_mapped;
      }
      ++compared;
      all.push_back(va);
    }
    mapped += category_mapped;
    if (category != "random" && category != "non-canonical") {
      EXPECT_GT(category_mapped, list.size() / 3) << category << ": too few mapped addresses to mean much";
    }
  }
  EXPECT_GE(compared, 2000u);
  EXPECT_GT(mapped, 1000u);

  // The CLI says the same for all of them in one call (VAs on stdin, JSON lines). The VM stays
  // paused; QMP is released so that the CLI can ask for the paging mode.
  std::string input;
  for (std::uint64_t va : all) input += hex(va) + "\n";
  paused.release();
  auto r = run_cli_stdin({"translate", vmi().name, "--cr3", hex(state.cr3.value()), "--stdin", "--json"}, input);
  EXPECT_EQ(r.exit_code, 1) << "some addresses are unmapped: " << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const arch::Translation ours = arch::walk(ram, state.mode, state.cr3, VirtAddr(all[i]));
    ASSERT_EQ(lines[i]["va"], hex(all[i]));
    if (ours.mapped()) {
      ASSERT_EQ(lines[i]["pa"], hex(ours.pa.value())) << lines[i].dump();
      EXPECT_EQ(lines[i]["page_size"], ours.page_size);
      EXPECT_TRUE(lines[i]["error"].is_null());
    } else {
      ASSERT_TRUE(lines[i]["pa"].is_null()) << lines[i].dump();
      EXPECT_TRUE(lines[i]["error"].is_string());
    }
  }
}

TEST(Arch, MemReadVaAgreesWithQemuXOnKernelText) {
  const std::uint64_t text = kernel_text();
  ASSERT_NE(text, 0u);
  PausedVm paused;
  const vm::PagingState state = paging(paused.client());
  struct Read {
    std::uint64_t va;
    int len;
  };
  const std::uint64_t page = text & ~0xfffull;
  const Read reads[] = {{text, 64}, {page, 4096}, {page + 4096 - 100, 256}, {page - 3000, 8192}, {page + 1, 777}};
  std::vector<std::vector<unsigned char>> expected;
  for (const Read& rd : reads) {
    expected.push_back(qemu_x(paused.client(), rd.va, rd.len));
    ASSERT_EQ(expected.back().size(), static_cast<std::size_t>(rd.len)) << "x at " << hex(rd.va);
  }
  paused.release();
  for (std::size_t i = 0; i < std::size(reads); ++i) {
    auto r = run_cli({"mem", "read", vmi().name, "--va", hex(reads[i].va), "--len", std::to_string(reads[i].len),
                      "--cr3", hex(state.cr3.value()), "--format", "raw"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_EQ(r.out.size(), expected[i].size());
    for (std::size_t b = 0; b < expected[i].size(); ++b)
      ASSERT_EQ(static_cast<unsigned char>(r.out[b]), expected[i][b]) << hex(reads[i].va) << "+" << b;
  }
  // Without --cr3: vCPU 0's current tables (kernel text is the same in every address space).
  auto dflt = run_cli({"mem", "read", vmi().name, "--va", hex(text), "--len", "64", "--format", "raw"});
  ASSERT_EQ(dflt.exit_code, 0) << dflt.err;
  EXPECT_EQ(std::vector<unsigned char>(dflt.out.begin(), dflt.out.end()), expected[0]);
  auto json = run_cli({"mem", "read", vmi().name, "--va", hex(text), "--len", "4", "--format", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(Json::parse(json.out)["read"], 4);
  EXPECT_TRUE(Json::parse(json.out)["fault"].is_null());
}

TEST(Arch, MemReadVaStopsAtTheFirstUnmappedByteLikeQemu) {
  auto ram = open_ram();
  PausedVm paused;
  const vm::PagingState state = paging(paused.client());
  const arch::Enumeration e = arch::enumerate(ram, state.mode, state.cr3, {.half = arch::Half::kKernel});
  // A kernel mapping of RAM followed by an unmapped page.
  const arch::MappedRange* edge = nullptr;
  for (const arch::MappedRange& r : e.ranges) {
    if (!arch::walk(ram, state.mode, state.cr3, r.va_last() + 1).mapped() && r.pa.value() + r.size <= vmi().mem_size &&
        r.size >= 4096) {
      edge = &r;
      break;
    }
  }
  ASSERT_NE(edge, nullptr);
  const std::uint64_t start = edge->va_last().value() + 1 - 100;
  const auto qemu = qemu_x(paused.client(), start, 256);
  EXPECT_EQ(qemu.size(), 96u) << "QEMU's x prints 8 bytes a line and stops at the first line it cannot read";
  paused.release();
  auto r = run_cli({"mem", "read", vmi().name, "--va", hex(start), "--len", "256", "--cr3", hex(state.cr3.value()),
                    "--format", "raw"});
  EXPECT_EQ(r.exit_code, 1);
  ASSERT_EQ(r.out.size(), 100u);
  for (std::size_t b = 0; b < qemu.size(); ++b) ASSERT_EQ(static_cast<unsigned char>(r.out[b]), qemu[b]) << b;
  EXPECT_NE(r.err.find("read 100 of 256 bytes; first fault at " + hex(edge->va_last().value() + 1)), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("not present"), std::string::npos) << r.err;
  auto json = run_cli({"mem", "read", vmi().name, "--va", hex(start), "--len", "256", "--cr3", hex(state.cr3.value()),
                       "--format", "json"});
  EXPECT_EQ(json.exit_code, 1);
  const Json j = Json::parse(json.out);
  EXPECT_EQ(j["read"], 100);
  EXPECT_EQ(j["fault"]["va"], hex(edge->va_last().value() + 1));
}

TEST(Arch, EnumerationCoversEveryMappingOfInfoTlb) {
  auto ram = open_ram();
  PausedVm paused;
  const vm::PagingState state = paging(paused.client());
  auto tlb = paused.client().hmp("info tlb", 0, 60s);
  ASSERT_TRUE(tlb.has_value()) << tlb.error().message();
  paused.release();
  auto r = run_cli({"pagetable", vmi().name, "--cr3", hex(state.cr3.value()), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json listing = Json::parse(r.out);
  EXPECT_EQ(listing["levels"], state.mode.levels());
  EXPECT_FALSE(listing["truncated"].get<bool>());
  struct Range {
    std::uint64_t va, last, pa, page_size;
    std::set<std::string> flags;
  };
  std::vector<Range> ranges;
  std::uint64_t our_pages = 0;
  for (const Json& j : listing["ranges"]) {
    // "va_end" is one past the last byte ("0x10000000000000000" at the very top): use the size.
    const std::uint64_t va = parse_u64(j["va"].get<std::string>()).value();
    const std::uint64_t size = j["size"].get<std::uint64_t>();
    Range rg{va, va + (size - 1), parse_u64(j["pa"].get<std::string>()).value(), j["page_size"].get<std::uint64_t>(), {}};
    for (const Json& f : j["flags"]) rg.flags.insert(f.get<std::string>());
    our_pages += size / rg.page_size;
    ranges.push_back(std::move(rg));
  }
  // "ffffffff81000000: 0000000001000000 -G-DA---W" per leaf: VA, PA, then the leaf's bits
  // X (NX), G, P (PS: a large page), D, A, C (PCD), T (PWT), U, W. Parsed by hand: 70,000+
  // lines through std::regex take seconds.
  std::istringstream lines(*tlb);
  std::string line;
  std::size_t tlb_pages = 0;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    ASSERT_EQ(line.size(), 44u) << "unexpected info tlb line: " << line;
    ASSERT_EQ(line.substr(16, 2), ": ") << line;
    const auto va_parsed = parse_hex(line.substr(0, 16));
    const auto pa_parsed = parse_hex(line.substr(18, 16));
    ASSERT_TRUE(va_parsed && pa_parsed) << line;
    const std::uint64_t va = *va_parsed;
    const std::uint64_t pa = *pa_parsed;
    const std::string bits = line.substr(35);
    auto it = std::upper_bound(ranges.begin(), ranges.end(), va, [](std::uint64_t v, const Range& x) { return v < x.va; });
    ASSERT_NE(it, ranges.begin()) << "not listed: " << line;
    const Range& rg = *std::prev(it);
    ASSERT_LE(va, rg.last) << "not listed: " << line;
    ASSERT_EQ(rg.pa + (va - rg.va), pa) << line;
    EXPECT_EQ(rg.page_size != arch::kPage4K, bits[2] == 'P') << line;
    // Our flags are effective (all levels); QEMU prints the leaf's. A/D/G are leaf-only.
    EXPECT_EQ(rg.flags.count("dirty") != 0, bits[3] == 'D') << line;
    EXPECT_EQ(rg.flags.count("accessed") != 0, bits[4] == 'A') << line;
    EXPECT_EQ(rg.flags.count("global") != 0, bits[1] == 'G') << line;
    EXPECT_TRUE(bits[0] != 'X' || rg.flags.count("nx") != 0) << line;
    EXPECT_TRUE(rg.flags.count("writable") == 0 || bits[8] == 'W') << line;
    EXPECT_TRUE(rg.flags.count("user") == 0 || bits[7] == 'U') << line;
    ++tlb_pages;
  }
  EXPECT_GT(tlb_pages, 1000u);
  EXPECT_EQ(our_pages, tlb_pages) << "every page we list is one QEMU lists, and the other way round";
  // The library gives the same listing the CLI printed.
  const arch::Enumeration e = arch::enumerate(ram, state.mode, state.cr3);
  EXPECT_EQ(e.ranges.size(), ranges.size());
}

TEST(Arch, CliTranslateAndPagetableWithoutCr3UseVcpu0) {
  const std::uint64_t text = kernel_text();  // its QMP session is closed: QMP is the CLI's now
  ASSERT_NE(text, 0u);

  auto one = run_cli({"translate", vmi().name, hex(text), "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const Json j = Json::parse(one.out);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys.size(), 5u);
  EXPECT_EQ(one.out.substr(0, 7), "{\"va\":\"") << "the documented key order starts with va";
  EXPECT_TRUE(j["pa"].is_string());
  EXPECT_TRUE(std::find(j["flags"].begin(), j["flags"].end(), "present") != j["flags"].end());
  EXPECT_TRUE(j["error"].is_null());

  auto by_qmp = run_cli({"translate", "--qmp", vmi().qmp, hex(text), "0x1", "--json"});
  EXPECT_EQ(by_qmp.exit_code, 1) << by_qmp.err;  // 0x1 is not mapped in the kernel's tables
  const auto lines = json_lines(by_qmp.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["pa"], j["pa"]);
  EXPECT_TRUE(lines[1]["pa"].is_null());
  EXPECT_NE(lines[1]["error"].get<std::string>().find("not present"), std::string::npos);

  auto human = run_cli({"translate", vmi().name, hex(text), "0x8000000000000000"});
  EXPECT_EQ(human.exit_code, 1);
  EXPECT_NE(human.out.find(hex(text) + " -> "), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("non-canonical"), std::string::npos) << human.out;

  EXPECT_EQ(run_cli({"translate", vmi().name, "nonsense"}).exit_code, 2);
  EXPECT_EQ(run_cli({"translate", vmi().name, "0x1000", "--levels", "3"}).exit_code, 2);
  EXPECT_EQ(run_cli({"translate", "no-such-vm", "0x1000"}).exit_code, 1);
  EXPECT_EQ(run_cli({"mem", "read", vmi().name, "--va", "0x1000", "--pa", "0x1000", "--len", "4"}).exit_code, 2);

  auto table = run_cli({"pagetable", vmi().name, "--kernel", "--paused"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("(vCPU 0, "), std::string::npos) << table.out.substr(0, 200);
  EXPECT_NE(table.out.find(" ranges, "), std::string::npos);
  EXPECT_EQ(table.out.find("\n0000"), std::string::npos) << "--kernel lists no user addresses";
  // --paused resumed the VM.
  auto after = connect();
  ASSERT_TRUE(after.has_value());
  auto status = qmp::query_status(*after);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->running);
}

}  // namespace
}  // namespace haywire::itest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new haywire::itest::SharedVm("arch"));  // NOLINT: gtest owns it
  return RUN_ALL_TESTS();
}
