// vCPU registers over QMP, against a fake QEMU replaying replies recorded from QEMU 7.2
// (Debian 12): the default guest on 2 vCPUs booted with no5lvl (4-level paging), and on one
// vCPU with 5-level paging (testdata/fuzz/info_registers/).
#include "haywire/vm/registers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "qmp/testing/fake_qmp_peer.h"

namespace haywire::vm {
namespace {

using ::testing::IsEmpty;
using qmp::Json;
using qmp::testing::FakeQmpPeer;
using qmp::testing::Transcript;
using namespace std::chrono_literals;

std::string recorded(const std::string& name) {
  std::ifstream in(std::string(HAYWIRE_TESTDATA_DIR) + "/fuzz/info_registers/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Recorded query-cpus-fast "return" member of the 2-vCPU VM.
const Json kTwoCpus = Json::parse(R"([
  {"thread-id": 22952, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0},
   "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"},
  {"thread-id": 22953, "props": {"core-id": 1, "thread-id": 0, "socket-id": 0},
   "qom-path": "/machine/unattached/device[2]", "cpu-index": 1, "target": "x86_64"}])");
const Json kOneCpu = Json::parse(R"([
  {"thread-id": 20312, "props": {"core-id": 0, "thread-id": 0, "socket-id": 0},
   "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}])");

// One vCPU's part of the recorded `info registers -a` (QEMU prints the same per cpu-index).
std::string cpu_text(int cpu) {
  const std::string all = recorded("qemu72_tcg_4level_all_2cpus.txt");
  const std::string header = "CPU#" + std::to_string(cpu);
  const auto begin = all.find(header);
  const auto end = all.find("CPU#", begin + header.size());
  return "\r\n" + all.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

Json hmp_args(int cpu) { return Json{{"command-line", "info registers"}, {"cpu-index", cpu}}; }
Json phys_bits_args(const std::string& path) { return Json{{"path", path}, {"property", "phys-bits"}}; }

#define ADOPT(client, peer)                                            \
  auto client##_adopted = qmp::Client::adopt((peer).take_client_fd(), 5s); \
  ASSERT_TRUE(client##_adopted) << client##_adopted.error().message(); \
  qmp::Client& client = *client##_adopted

TEST(Registers, EveryVcpuIsListedAndAsked) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-cpus-fast", kTwoCpus)
                       .answer("human-monitor-command", Json(cpu_text(0)), hmp_args(0))
                       .answer("human-monitor-command", Json(cpu_text(1)), hmp_args(1)));
  ADOPT(client, peer);
  auto regs = all_control_registers(client);
  ASSERT_TRUE(regs.has_value()) << regs.error().message();
  ASSERT_EQ(regs->size(), 2u);
  EXPECT_EQ((*regs)[0].cpu, 0);
  EXPECT_EQ((*regs)[0].cr3, 0x289a000u);
  EXPECT_EQ((*regs)[1].cpu, 1);
  EXPECT_EQ((*regs)[1].cr3, 0x7410000u);
  EXPECT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(Registers, PagingStateOfVcpu0HasLevelsFromCr4AndPhysBitsFromTheCpuModel) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-cpus-fast", kOneCpu)
                       .answer("human-monitor-command", Json(recorded("qemu72_tcg_la57_cpu0.txt")), hmp_args(0))
                       .answer("qom-get", Json(40), phys_bits_args("/machine/unattached/device[0]")));
  ADOPT(client, peer);
  auto state = paging_state(client, 0);
  ASSERT_TRUE(state.has_value()) << state.error().message();
  EXPECT_EQ(state->mode.levels(), 5);
  EXPECT_EQ(state->mode.phys_bits(), 40u);
  EXPECT_EQ(state->cr3.value(), 0x2a1c000u);
  ASSERT_TRUE(state->registers.has_value());
  EXPECT_EQ(state->registers->cr4, 0x751ef0u);
  EXPECT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(Registers, PhysBitsFallBackToTheArchitecturalMaximum) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("qom-get")
                       .error("GenericError", "Property 'phys-bits' not found")
                       .answer("qom-get", Json(99)));
  ADOPT(client, peer);
  EXPECT_EQ(phys_bits(client, Vcpu{0, "/machine/unattached/device[0]"}), 52u);
  EXPECT_EQ(phys_bits(client, Vcpu{0, "/machine/unattached/device[0]"}), 52u);  // out of range
  EXPECT_EQ(phys_bits(client, Vcpu{0, ""}), 52u);                               // no QOM path: no question
  EXPECT_TRUE(peer.wait_done());
}

TEST(Registers, AMissingVcpuOrOneNotInLongModeIsNotFoundWithAHint) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-cpus-fast", kOneCpu)
                       .answer("query-cpus-fast", kOneCpu)
                       .answer("human-monitor-command",
                               Json("\r\nCPU#0\r\nCR0=60000010 CR2=0 CR3=0 CR4=0\r\nEFER=0000000000000000\r\n"),
                               hmp_args(0))
                       .answer("qom-get", Json(40)));
  ADOPT(client, peer);
  auto missing = paging_state(client, 3);
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.error().is<NotFound>());
  EXPECT_NE(missing.error().message().find("1 vCPU"), std::string::npos);
  auto booting = paging_state(client, 0);
  ASSERT_FALSE(booting.has_value());
  EXPECT_TRUE(booting.error().is<NotFound>());
  EXPECT_NE(booting.error().message().find("long mode"), std::string::npos);
}

TEST(Registers, MalformedRepliesAreErrorsNotCrashes) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-cpus-fast", Json::object())
                       .answer("query-cpus-fast", Json::parse(R"([{"cpu-index": "zero"}])"))
                       .answer("human-monitor-command", Json("no registers here\r\n"), hmp_args(0)));
  ADOPT(client, peer);
  EXPECT_TRUE(vcpus(client).error().is<ParseError>());
  EXPECT_TRUE(vcpus(client).error().is<ParseError>());
  auto regs = control_registers(client, 0);
  ASSERT_FALSE(regs.has_value());
  EXPECT_TRUE(regs.error().is<ParseError>());
  EXPECT_NE(regs.error().message().find("vCPU 0"), std::string::npos);
}

TEST(Registers, ResolvingWithCr3AndLevelsNeedsNoQmp) {
  // A QMP socket that does not exist: any attempt to use it would fail.
  auto target = Target::make("", "/nonexistent/qmp.sock");
  ASSERT_TRUE(target.has_value());
  auto state = resolve_paging(*target, {.cr3 = Cr3(0x1234'5000), .levels = 5});
  ASSERT_TRUE(state.has_value()) << state.error().message();
  EXPECT_EQ(state->cr3.value(), 0x1234'5000u);
  EXPECT_EQ(state->mode.levels(), 5);
  EXPECT_FALSE(state->registers.has_value());
  auto bad = resolve_paging(*target, {.cr3 = Cr3(0), .levels = 3});
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(bad.error().is<InvalidArgument>());
  auto no_qmp = resolve_paging(*target, {.cr3 = Cr3(0)});  // levels unknown: must ask QEMU
  EXPECT_FALSE(no_qmp.has_value());
}

}  // namespace
}  // namespace haywire::vm
