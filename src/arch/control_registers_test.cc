// `info registers` as QEMU 7.2 (Debian 12) prints it, recorded from the default guest
// (testdata/fuzz/info_registers/, also the fuzz seeds): TCG, -cpu max, 5-level paging; and
// the same kernel booted with no5lvl on 2 vCPUs.
#include "haywire/arch/control_registers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace haywire::arch {
namespace {

std::string recorded(const std::string& name) {
  std::ifstream in(std::string(HAYWIRE_TESTDATA_DIR) + "/fuzz/info_registers/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(InfoRegisters, ParsesTheRecordedFiveLevelGuest) {
  const std::string text = recorded("qemu72_tcg_la57_cpu0.txt");
  ASSERT_FALSE(text.empty());
  auto regs = parse_info_registers(text);
  ASSERT_TRUE(regs.has_value()) << regs.error().message();
  ASSERT_EQ(regs->size(), 1u);
  const ControlRegisters& r = regs->front();
  EXPECT_EQ(r.cpu, 0);
  EXPECT_EQ(r.cr0, 0x80050033u);
  EXPECT_EQ(r.cr3, 0x2a1c000u);
  EXPECT_EQ(r.cr4, 0x751ef0u);
  EXPECT_EQ(r.efer, 0xd01u);
  EXPECT_TRUE(r.paging());
  EXPECT_TRUE(r.long_mode());
  EXPECT_TRUE(r.la57());
  EXPECT_TRUE(r.nx());
  EXPECT_FALSE(r.pcid());
  auto mode = paging_mode(r, 40);
  ASSERT_TRUE(mode.has_value());
  EXPECT_EQ(mode->levels(), 5);
  EXPECT_EQ(mode->phys_bits(), 40u);
  EXPECT_TRUE(mode->nx_enabled());
}

TEST(InfoRegisters, ParsesEveryVcpuOfInfoRegistersDashA) {
  auto regs = parse_info_registers(recorded("qemu72_tcg_4level_all_2cpus.txt"));
  ASSERT_TRUE(regs.has_value()) << regs.error().message();
  ASSERT_EQ(regs->size(), 2u);
  EXPECT_EQ((*regs)[0].cpu, 0);
  EXPECT_EQ((*regs)[0].cr3, 0x289a000u);
  EXPECT_EQ((*regs)[1].cpu, 1);
  EXPECT_EQ((*regs)[1].cr3, 0x7410000u);
  EXPECT_EQ((*regs)[1].cr4, 0x750ee0u);
  EXPECT_EQ(paging_mode((*regs)[1])->levels(), 4);
  auto one = parse_info_registers(recorded("qemu72_tcg_4level_cpu1.txt"));
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->front().cpu, 1);
}

TEST(InfoRegisters, TextWithoutAHeaderIsTheDefaultVcpu) {
  auto regs = parse_info_registers("CR0=80000011 CR2=0 CR3=00001000 CR4=00000020\nEFER=0000000000000500\n", 3);
  ASSERT_TRUE(regs.has_value()) << regs.error().message();
  EXPECT_EQ(regs->front().cpu, 3);
  EXPECT_EQ(regs->front().cr3, 0x1000u);
  EXPECT_EQ(paging_mode(regs->front())->levels(), 4);
  EXPECT_FALSE(paging_mode(regs->front())->nx_enabled());  // EFER.NXE clear
}

TEST(InfoRegisters, NamesAreMatchedAsWholeTokens) {
  // A longer register name ending in "CR0=" must not be taken for CR0.
  auto regs = parse_info_registers("XCR0=ffffffffffffffff CR0=80000011 CR3=2000 CR4=20 EFER=500\n");
  ASSERT_TRUE(regs.has_value());
  EXPECT_EQ(regs->front().cr0, 0x80000011u);
}

TEST(InfoRegisters, MissingOrMalformedRegistersAreParseErrors) {
  auto none = parse_info_registers("hello\nworld\n");
  ASSERT_FALSE(none.has_value());
  EXPECT_TRUE(none.error().is<ParseError>());
  auto missing = parse_info_registers("CPU#0\nCR0=80000011 CR3=2000 CR4=20\n");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("EFER"), std::string::npos);
  auto garbage = parse_info_registers("CR0=zz CR3=2000 CR4=20 EFER=500\n");
  ASSERT_FALSE(garbage.has_value());
  EXPECT_NE(garbage.error().message().find("CR0"), std::string::npos);
  auto too_long = parse_info_registers("CR0=11111111111111111 CR3=0 CR4=0 EFER=0\n");
  EXPECT_FALSE(too_long.has_value());
  auto partial_second = parse_info_registers("CPU#0\nCR0=1 CR3=2 CR4=3 EFER=4\nCPU#1\nCR3=5\n");
  EXPECT_FALSE(partial_second.has_value());
}

TEST(InfoRegisters, TheVcpuCountIsBounded) {
  std::string text;
  for (std::size_t i = 0; i <= kMaxCpusInText; ++i) text += "CPU#" + std::to_string(i) + "\nCR0=1 CR3=2 CR4=3 EFER=4\n";
  auto regs = parse_info_registers(text);
  ASSERT_FALSE(regs.has_value());
  EXPECT_NE(regs.error().message().find("vCPUs"), std::string::npos);
}

TEST(PagingModeFromRegisters, RefusesAVcpuThatIsNotInLongModeWithPaging) {
  // QEMU's reset state: real mode, no paging.
  ControlRegisters reset{.cpu = 0, .cr0 = 0x60000010, .cr3 = 0, .cr4 = 0, .efer = 0};
  auto mode = paging_mode(reset);
  ASSERT_FALSE(mode.has_value());
  EXPECT_TRUE(mode.error().is<NotFound>());
  EXPECT_NE(mode.error().message().find("long mode"), std::string::npos);
  // 32-bit PAE paging, not long mode.
  EXPECT_FALSE(paging_mode({.cr0 = 0x80000011, .cr4 = 0x20, .efer = 0}).has_value());
}

}  // namespace
}  // namespace haywire::arch
