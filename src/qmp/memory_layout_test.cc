#include "haywire/qmp/memory_layout.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace haywire::qmp {
namespace {

constexpr std::uint64_t k256M = 0x1000'0000;
constexpr std::uint64_t k4G = 0x1'0000'0000;
constexpr std::uint64_t k8G = 0x2'0000'0000;

std::string recorded_mtree(const std::string& name) {
  std::ifstream in(std::string(HAYWIRE_TESTDATA_DIR) + "/mtree/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<RamRegion> regions(std::initializer_list<std::array<std::uint64_t, 3>> list) {
  std::vector<RamRegion> out;
  for (const auto& [start, size, offset] : list) out.push_back(RamRegion{PhysAddr(start), size, offset});
  return out;
}

// A system FlatView holding `lines`, with the SMM view before it as QEMU prints it.
std::string flatview(const std::string& lines) {
  return "FlatView #0\n AS \"cpu-smm-0\", root: memory\n Root memory region: memory\n"
         "  0000000000000000-00000000000fffff (prio 0, ram): mem0\n\n"
         "FlatView #1\n AS \"memory\", root: system\n AS \"cpu-memory-0\", root: system\n"
         " Root memory region: system\n" +
         lines + "\n";
}

// ---- parse_mtree on real QEMU 7.2 output ----

struct RecordedCase {
  const char* file;
  std::uint64_t ram;
  std::vector<RamRegion> expected;
};

class RecordedMtree : public testing::TestWithParam<RecordedCase> {};

TEST_P(RecordedMtree, GivesTheSystemLayoutOfTheBackend) {
  const RecordedCase& c = GetParam();
  std::string text = recorded_mtree(c.file);
  ASSERT_FALSE(text.empty()) << c.file;
  auto layout = parse_mtree(text, "mem0", c.ram);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), c.expected);
  EXPECT_EQ(layout->total(), c.ram);
}

TEST_P(RecordedMtree, AgreesWithQemusPlacementRules) {
  const RecordedCase& c = GetParam();
  MachineKind kind = std::string(c.file).find("q35") != std::string::npos ? MachineKind::kQ35
                                                                          : MachineKind::kPc;
  auto rules = fallback_layout(kind, c.ram);
  ASSERT_TRUE(rules);
  EXPECT_EQ(rules->regions(), c.expected);
}

TEST_P(RecordedMtree, WorksWithPlainNewlines) {
  const RecordedCase& c = GetParam();
  std::string text = recorded_mtree(c.file);
  std::erase(text, '\r');
  auto layout = parse_mtree(text, "mem0", c.ram);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), c.expected);
}

TEST_P(RecordedMtree, EveryTruncationIsAnErrorOrAPrefixOfTheLayout) {
  const RecordedCase& c = GetParam();
  std::string text = recorded_mtree(c.file);
  for (std::size_t cut = 0; cut < text.size(); cut += 7) {
    auto layout = parse_mtree(std::string_view(text).substr(0, cut), "mem0", c.ram);
    if (!layout) {
      EXPECT_TRUE(layout.error().is<ParseError>()) << layout.error().message();
      continue;
    }
    EXPECT_LE(layout->total(), c.ram);
    ASSERT_FALSE(layout->regions().empty());
    EXPECT_EQ(layout->regions().front().start, PhysAddr(0));
  }
}

TEST_P(RecordedMtree, OtherBackendIdIsAParseError) {
  const RecordedCase& c = GetParam();
  std::string text = recorded_mtree(c.file);
  for (const char* id : {"ram0", "mem", "mem00", "MEM0", "pc.ram"}) {
    auto layout = parse_mtree(text, id, c.ram);
    ASSERT_FALSE(layout) << id;
    EXPECT_TRUE(layout.error().is<ParseError>());
    EXPECT_NE(layout.error().message().find(id), std::string::npos) << layout.error().message();
  }
}

TEST_P(RecordedMtree, RegionPastTheFileIsAParseError) {
  const RecordedCase& c = GetParam();
  auto layout = parse_mtree(recorded_mtree(c.file), "mem0", c.ram / 2);
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<ParseError>());
  EXPECT_NE(layout.error().message().find("past the end"), std::string::npos)
      << layout.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Qemu72, RecordedMtree,
    testing::Values(
        RecordedCase{"mtree_q35_256m.txt", k256M, regions({{0, k256M, 0}})},
        RecordedCase{"mtree_pc_256m.txt", k256M, regions({{0, k256M, 0}})},
        RecordedCase{"mtree_q35_4g.txt", k4G,
                     regions({{0, 0x8000'0000, 0}, {k4G, 0x8000'0000, 0x8000'0000}})},
        RecordedCase{"mtree_pc_4g.txt", k4G,
                     regions({{0, 0xC000'0000, 0}, {k4G, 0x4000'0000, 0xC000'0000}})}),
    [](const testing::TestParamInfo<RecordedCase>& param_info) {
      std::string name = param_info.param.file;
      name = name.substr(6, name.size() - 10);  // "mtree_q35_4g.txt" -> "q35_4g"
      return name;
    });

// ---- parse_mtree on hand-made and hostile text ----

TEST(ParseMtree, IgnoresTheSmmViewEvenWhenItComesFirst) {
  std::string text = recorded_mtree("mtree_q35_4g.txt");
  std::size_t system = text.find("FlatView #1");
  ASSERT_NE(system, std::string::npos);
  auto layout = parse_mtree(text.substr(0, system), "mem0", k4G);
  ASSERT_FALSE(layout);
  EXPECT_NE(layout.error().message().find("root: system"), std::string::npos);
}

TEST(ParseMtree, NoOffsetMeansZeroAndRomdCountsButIoDoesNot) {
  auto layout = parse_mtree(flatview("  0000000000000000-0000000000000fff (prio 0, ram): mem0\n"
                                     "  0000000000001000-0000000000001fff (prio 0, romd): mem0 @0000000000001000\n"
                                     "  0000000000002000-0000000000002fff (prio 0, i/o): mem0 @0000000000005000\n"
                                     "  0000000000003000-0000000000003fff (prio 0, nv-ram): mem0 @0000000000003000\n"
                                     "  0000000000004000-0000000000004fff (prio 0, ramd): mem0 @0000000000004000\n"),
                            "mem0", 0x10000);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), regions({{0, 0x2000, 0}, {0x3000, 0x1000, 0x3000}}));
}

// Recorded from QEMU 7.2 (q35, 3 GiB, -nodefaults -S): before the firmware runs, pc.rom and
// the BIOS shadow sit over 0xC0000-0xFFFFF, splitting the backend in the system view.
constexpr const char* kPrelaunchQ35System =
    "FlatView #1\r\n"
    " AS \"memory\", root: system\r\n"
    " AS \"cpu-memory-0\", root: system\r\n"
    " Root memory region: system\r\n"
    "  0000000000000000-00000000000bffff (prio 0, ram): mem0\r\n"
    "  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\r\n"
    "  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000\r\n"
    "  0000000000100000-000000007fffffff (prio 0, ram): mem0 @0000000000100000\r\n"
    "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n"
    "  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\r\n"
    "  00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\r\n"
    "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"
    "  0000000100000000-000000013fffffff (prio 0, ram): mem0 @0000000080000000\r\n"
    "\r\n";

TEST(ParseMtree, RomOverTheLegacyWindowDoesNotSplitTheLayout) {
  auto layout = parse_mtree(kPrelaunchQ35System, "mem0", 0xC000'0000);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), regions({{0, 0x8000'0000, 0}, {k4G, 0x4000'0000, 0x8000'0000}}));
  auto rules = fallback_layout(MachineKind::kQ35, 0xC000'0000);
  ASSERT_TRUE(rules);
  EXPECT_EQ(layout->regions(), rules->regions());
}

TEST(ParseMtree, HolesOutsideTheLegacyWindowOrUnlikeTheFileStay) {
  // Same length in the file but above 1 MiB: a real hole in what the guest can use.
  auto outside = parse_mtree(flatview("  0000000000000000-00000000001fffff (prio 0, ram): mem0\n"
                                      "  0000000000300000-00000000003fffff (prio 0, ram): mem0 @0000000000300000\n"),
                             "mem0", 0x40'0000);
  ASSERT_TRUE(outside) << outside.error().message();
  EXPECT_EQ(outside->regions().size(), 2u);
  // Inside the window but the file offsets do not skip the same amount.
  auto unlike = parse_mtree(flatview("  0000000000000000-00000000000bffff (prio 0, ram): mem0\n"
                                     "  0000000000100000-00000000001fffff (prio 0, ram): mem0 @00000000000c0000\n"),
                            "mem0", 0x20'0000);
  ASSERT_TRUE(unlike) << unlike.error().message();
  EXPECT_EQ(unlike->regions(), regions({{0, 0xC'0000, 0}, {0x10'0000, 0x10'0000, 0xC'0000}}));
}

TEST(ParseMtree, KeepsPiecesThatAreNotContiguousInTheFile) {
  auto layout = parse_mtree(flatview("  0000000000000000-0000000000000fff (prio 0, ram): mem0 @0000000000001000\n"
                                     "  0000000000001000-0000000000001fff (prio 0, ram): mem0\n"),
                            "mem0", 0x2000);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), regions({{0, 0x1000, 0x1000}, {0x1000, 0x1000, 0}}));
}

TEST(ParseMtree, MalformedNumbersInOurRegionAreAParseError) {
  for (const char* line : {"  00000000000z0000-0000000000000fff (prio 0, ram): mem0",
                           "  0000000000001000-0000000000000fff (prio 0, ram): mem0",
                           "  0000000000000000-0000000000000fff (prio 0, ram): mem0 @xyz",
                           "  0000000000000000-ffffffffffffffff (prio 0, ram): mem0",
                           "  0000000000000000-10000000000000fff (prio 0, ram): mem0"}) {
    auto layout = parse_mtree(flatview(line), "mem0", k4G);
    ASSERT_FALSE(layout) << line;
    EXPECT_TRUE(layout.error().is<ParseError>()) << line;
  }
}

TEST(ParseMtree, MalformedLinesOfOtherRegionsAreIgnored) {
  auto layout = parse_mtree(flatview("  zzzz-yyyy (prio 0, ram): pc.bios @qq\n"
                                     "  garbage\n"
                                     "  (prio 0, ram): mem0\n"
                                     "  0000000000000000-0000000000000fff (prio 0, ram): mem0\n"),
                            "mem0", 0x1000);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), regions({{0, 0x1000, 0}}));
}

TEST(ParseMtree, OverlappingPiecesAreAParseError) {
  auto layout = parse_mtree(flatview("  0000000000000000-0000000000001fff (prio 0, ram): mem0\n"
                                     "  0000000000001000-0000000000002fff (prio 0, ram): mem0 @0000000000002000\n"),
                            "mem0", 0x10000);
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<ParseError>());
}

TEST(ParseMtree, HugeLinesAreSkippedWithoutHarm) {
  std::string text = recorded_mtree("mtree_pc_4g.txt");
  std::string huge(8u << 20, 'A');
  std::string huge_region = huge + " (prio 0, ram): mem0 @0000000000000000\n";
  // Whole huge lines before the file, inside the system view and at its end.
  std::size_t first_region = text.find("  0000000000000000-", text.find("FlatView #2"));
  ASSERT_NE(first_region, std::string::npos);
  std::string hostile = huge + "\n" + text.substr(0, first_region) + huge_region +
                        text.substr(first_region) + huge;
  auto layout = parse_mtree(hostile, "mem0", k4G);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->total(), k4G);

  // A backend id that only a huge line could carry is simply not found.
  auto missing = parse_mtree(hostile, huge, k4G);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is<ParseError>());
}

TEST(ParseMtree, GarbageIsAParseError) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::string junk(rng() % 4096, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    auto layout = parse_mtree(junk, "mem0", k4G);
    ASSERT_FALSE(layout);
    EXPECT_TRUE(layout.error().is<ParseError>());
  }
  EXPECT_FALSE(parse_mtree("", "mem0", k4G));
  EXPECT_FALSE(parse_mtree("FlatView #", "mem0", k4G));
  EXPECT_FALSE(parse_mtree(flatview(""), "mem0", k4G));
}

TEST(ParseMtree, TooManyPiecesIsAParseError) {
  std::string lines;
  for (std::uint64_t i = 0; i < 5000; ++i)
    lines += fmt::format("  {:016x}-{:016x} (prio 0, ram): mem0 @{:016x}\n", i * 0x2000,
                         i * 0x2000 + 0xfff, i * 0x1000);
  auto layout = parse_mtree(flatview(lines), "mem0", k8G);
  ASSERT_FALSE(layout);
  EXPECT_NE(layout.error().message().find("pieces"), std::string::npos);
}

TEST(ParseMtree, EmptyBackendIdIsRejected) {
  auto layout = parse_mtree(recorded_mtree("mtree_q35_256m.txt"), "", k256M);
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<InvalidArgument>());
}

// ---- machine types and QEMU's placement rules ----

TEST(MachineKind, RecognisesQemuTypeNames) {
  EXPECT_EQ(machine_kind("pc-q35-7.2-machine"), MachineKind::kQ35);
  EXPECT_EQ(machine_kind("pc-q35-2.12-machine"), MachineKind::kQ35);
  EXPECT_EQ(machine_kind("q35"), MachineKind::kQ35);
  EXPECT_EQ(machine_kind("pc-i440fx-7.2-machine"), MachineKind::kPc);
  EXPECT_EQ(machine_kind("pc-1.3-machine"), MachineKind::kPc);
  EXPECT_EQ(machine_kind("pc"), MachineKind::kPc);
  EXPECT_EQ(machine_kind("microvm-machine"), MachineKind::kUnknown);
  EXPECT_EQ(machine_kind("isapc-machine"), MachineKind::kUnknown);
  EXPECT_EQ(machine_kind(""), MachineKind::kUnknown);
}

struct RuleCase {
  MachineKind kind;
  std::uint64_t ram;
  std::vector<RamRegion> expected;
};

class PlacementRules : public testing::TestWithParam<RuleCase> {};

TEST_P(PlacementRules, SplitRamAroundThePciHole) {
  const RuleCase& c = GetParam();
  auto layout = fallback_layout(c.kind, c.ram);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions(), c.expected);
  EXPECT_EQ(layout->total(), c.ram);
}

INSTANTIATE_TEST_SUITE_P(
    Q35AndPc, PlacementRules,
    testing::Values(
        RuleCase{MachineKind::kQ35, k256M, regions({{0, k256M, 0}})},
        RuleCase{MachineKind::kQ35, 0xAFFF'F000, regions({{0, 0xAFFF'F000, 0}})},
        RuleCase{MachineKind::kQ35, 0xB000'0000,
                 regions({{0, 0x8000'0000, 0}, {k4G, 0x3000'0000, 0x8000'0000}})},
        RuleCase{MachineKind::kQ35, k4G, regions({{0, 0x8000'0000, 0}, {k4G, 0x8000'0000, 0x8000'0000}})},
        RuleCase{MachineKind::kQ35, k8G,
                 regions({{0, 0x8000'0000, 0}, {k4G, 0x1'8000'0000, 0x8000'0000}})},
        RuleCase{MachineKind::kPc, k256M, regions({{0, k256M, 0}})},
        RuleCase{MachineKind::kPc, 0xB000'0000, regions({{0, 0xB000'0000, 0}})},
        RuleCase{MachineKind::kPc, 0xDFFF'F000, regions({{0, 0xDFFF'F000, 0}})},
        RuleCase{MachineKind::kPc, 0xE000'0000,
                 regions({{0, 0xC000'0000, 0}, {k4G, 0x2000'0000, 0xC000'0000}})},
        RuleCase{MachineKind::kPc, k4G, regions({{0, 0xC000'0000, 0}, {k4G, 0x4000'0000, 0xC000'0000}})},
        RuleCase{MachineKind::kPc, k8G,
                 regions({{0, 0xC000'0000, 0}, {k4G, 0x1'4000'0000, 0xC000'0000}})}));

TEST(FallbackLayout, UnknownMachineIsNotFoundWithAHint) {
  auto layout = fallback_layout(MachineKind::kUnknown, k4G);
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<NotFound>());
  EXPECT_NE(layout.error().message().find("info mtree"), std::string::npos);
}

TEST(FallbackLayout, ZeroOrAbsurdRamIsAnError) {
  EXPECT_FALSE(fallback_layout(MachineKind::kQ35, 0));
  EXPECT_FALSE(fallback_layout(MachineKind::kPc, UINT64_MAX));  // would wrap past 2^64
}

}  // namespace
}  // namespace haywire::qmp
