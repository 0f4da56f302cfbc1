// Typed helpers against transcripts built from replies recorded from QEMU 7.2 (Debian 12)
// for the four reference VMs: q35 and pc, 256 MiB and 4 GiB, each with
// -object memory-backend-file,id=mem0,mem-path=/dev/shm/qemu_ram_fxN,size=...,share=on.
#include "haywire/qmp/commands.h"
#include "haywire/qmp/memory_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "qmp/testing/fake_qmp_peer.h"

namespace haywire::qmp {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using qmp::testing::FakeQmpPeer;
using qmp::testing::Transcript;

#define ADOPT(client, peer)                                         \
  auto client##_adopted = Client::adopt((peer).take_client_fd(), 5s); \
  ASSERT_TRUE(client##_adopted) << client##_adopted.error().message(); \
  Client& client = *client##_adopted

constexpr std::uint64_t k4G = 0x1'0000'0000;

struct RecordedVm {
  const char* name;           // also names testdata/mtree/mtree_<name>.txt
  const char* machine_type;
  const char* query_memdev;   // recorded "return" members
  const char* qom_list_objects;
  const char* mem_path;
  std::uint64_t ram;
};

constexpr const char* kQomListObjects =
    R"([{"name": "type", "type": "string"}, {"name": "mem0", "type": "child<memory-backend-file>"}])";
constexpr const char* kQueryMemdev256M =
    R"([{"share": true, "reserve": true, "prealloc": false, "host-nodes": [], "size": 268435456, "merge": true, "dump": true, "policy": "default", "id": "mem0"}])";
constexpr const char* kQueryMemdev4G =
    R"([{"share": true, "reserve": true, "prealloc": false, "host-nodes": [], "size": 4294967296, "merge": true, "dump": true, "policy": "default", "id": "mem0"}])";
constexpr const char* kQueryStatusRunning =
    R"({"status": "running", "singlestep": false, "running": true})";

const RecordedVm kVms[] = {
    {"q35_256m", "pc-q35-7.2-machine", kQueryMemdev256M, kQomListObjects, "/dev/shm/qemu_ram_fx1", 0x1000'0000},
    {"q35_4g", "pc-q35-7.2-machine", kQueryMemdev4G, kQomListObjects, "/dev/shm/qemu_ram_fx2", k4G},
    {"pc_4g", "pc-i440fx-7.2-machine", kQueryMemdev4G, kQomListObjects, "/dev/shm/qemu_ram_fx3", k4G},
    {"pc_256m", "pc-i440fx-7.2-machine", kQueryMemdev256M, kQomListObjects, "/dev/shm/qemu_ram_fx4", 0x1000'0000},
};

std::string recorded_mtree(const std::string& vm) {
  std::ifstream in(std::string(HAYWIRE_TESTDATA_DIR) + "/mtree/mtree_" + vm + ".txt");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// What memdevs() asks, answered with the VM's recorded replies.
Transcript& answer_memdevs(Transcript& script, const RecordedVm& vm) {
  return script.answer("query-memdev", Json::parse(vm.query_memdev), Json(nullptr))
      .answer("qom-list", Json::parse(vm.qom_list_objects), Json{{"path", "/objects"}})
      .answer("qom-get", vm.mem_path, Json{{"path", "/objects/mem0"}, {"property", "mem-path"}});
}

Transcript& answer_machine_type(Transcript& script, const RecordedVm& vm) {
  return script.answer("qom-get", vm.machine_type, Json{{"path", "/machine"}, {"property", "type"}});
}

class RecordedVms : public ::testing::TestWithParam<RecordedVm> {};

TEST_P(RecordedVms, QueryStatus) {
  FakeQmpPeer peer(Transcript().negotiate().answer("query-status", Json::parse(kQueryStatusRunning)));
  ADOPT(client, peer);
  auto status = query_status(client);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->status, "running");
  EXPECT_TRUE(status->running);
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST_P(RecordedVms, MemdevsCompletesTypeAndPath) {
  const RecordedVm& vm = GetParam();
  Transcript script;
  answer_memdevs(script.negotiate(), vm);
  FakeQmpPeer peer(std::move(script));
  ADOPT(client, peer);
  auto devices = memdevs(client);
  ASSERT_TRUE(devices) << devices.error().message();
  ASSERT_EQ(devices->size(), 1u);
  const MemDev& mem0 = devices->front();
  EXPECT_EQ(mem0.id, "mem0");
  EXPECT_EQ(mem0.type, "memory-backend-file");
  EXPECT_EQ(mem0.size, vm.ram);
  EXPECT_TRUE(mem0.share);
  EXPECT_EQ(mem0.mem_path, vm.mem_path);
  ASSERT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST_P(RecordedVms, SharedFileBackendIsMem0) {
  const RecordedVm& vm = GetParam();
  Transcript script;
  answer_memdevs(script.negotiate(), vm);
  FakeQmpPeer peer(std::move(script));
  ADOPT(client, peer);
  auto backend = shared_file_backend(client);
  ASSERT_TRUE(backend) << backend.error().message();
  EXPECT_EQ(backend->id, "mem0");
  EXPECT_EQ(backend->mem_path, vm.mem_path);
}

TEST_P(RecordedVms, MachineType) {
  const RecordedVm& vm = GetParam();
  Transcript script;
  answer_machine_type(script.negotiate(), vm);
  FakeQmpPeer peer(std::move(script));
  ADOPT(client, peer);
  auto type = machine_type(client);
  ASSERT_TRUE(type) << type.error().message();
  EXPECT_EQ(*type, vm.machine_type);
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST_P(RecordedVms, MemoryLayoutFromMtreeMatchesTheRules) {
  const RecordedVm& vm = GetParam();
  FakeQmpPeer peer(Transcript().negotiate().answer_hmp("info mtree -f", recorded_mtree(vm.name)));
  ADOPT(client, peer);
  MemDev backend{"mem0", "memory-backend-file", vm.ram, true, vm.mem_path};
  auto layout = memory_layout(client, backend);
  ASSERT_TRUE(layout) << layout.error().message();
  auto rules = fallback_layout(machine_kind(vm.machine_type), vm.ram);
  ASSERT_TRUE(rules);
  EXPECT_EQ(layout->regions(), rules->regions());
  ASSERT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());  // no machine-type question was needed
}

TEST_P(RecordedVms, MemoryLayoutFallsBackToTheRulesWhenMtreeIsUnusable) {
  const RecordedVm& vm = GetParam();
  Transcript script;
  script.negotiate().answer_hmp("info mtree -f", "unknown command: 'info mtree'\r\n");
  answer_machine_type(script, vm);
  FakeQmpPeer peer(std::move(script));
  ADOPT(client, peer);
  MemDev backend{"mem0", "memory-backend-file", vm.ram, true, vm.mem_path};
  auto layout = memory_layout(client, backend);
  ASSERT_TRUE(layout) << layout.error().message();
  auto expected = parse_mtree(recorded_mtree(vm.name), "mem0", vm.ram);
  ASSERT_TRUE(expected);
  EXPECT_EQ(layout->regions(), expected->regions());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Qemu72, RecordedVms, ::testing::ValuesIn(kVms),
                         [](const ::testing::TestParamInfo<RecordedVm>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(QueryStatus, PausedAndMalformedReplies) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-status", Json{{"status", "paused"}, {"singlestep", false}, {"running", false}})
                       .answer("query-status", Json::array())
                       .answer("query-status", Json{{"status", 3}}));
  ADOPT(client, peer);
  auto paused = query_status(client);
  ASSERT_TRUE(paused) << paused.error().message();
  EXPECT_EQ(paused->status, "paused");
  EXPECT_FALSE(paused->running);
  for (int i = 0; i < 2; ++i) {
    auto bad = query_status(client);
    ASSERT_FALSE(bad);
    EXPECT_TRUE(bad.error().is<ParseError>()) << bad.error().message();
  }
}

TEST(SharedFileBackend, NoneFoundGivesTheQemuOptionsToUse) {
  // Plain -m: QEMU's own "pc.ram" backend, not under /objects, not shared, no file.
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-memdev", Json::parse(R"([{"share": false, "size": 4294967296,
                                                               "merge": true, "dump": true,
                                                               "prealloc": false, "reserve": true,
                                                               "host-nodes": [], "policy": "default",
                                                               "id": "pc.ram"}])"))
                       .answer("qom-list", Json::parse(R"([{"name": "type", "type": "string"}])")));
  ADOPT(client, peer);
  auto backend = shared_file_backend(client);
  ASSERT_FALSE(backend);
  ASSERT_TRUE(backend.error().is<NotFound>()) << backend.error().message();
  std::string message = backend.error().message();
  EXPECT_THAT(message, HasSubstr("'pc.ram' (unknown type, share=off)"));
  EXPECT_THAT(message, HasSubstr("-object memory-backend-file,id=mem0,mem-path=/dev/shm/"
                                 "qemu_ram_NAME,size=4G,share=on -machine memory-backend=mem0"));
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(SharedFileBackend, UnsharedFileBackendIsNotEnough) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-memdev", Json::parse(R"([{"share": false, "size": 268435456, "id": "mem0"}])"))
                       .answer("qom-list", Json::parse(kQomListObjects))
                       .answer("qom-get", "/dev/shm/qemu_ram_x"));
  ADOPT(client, peer);
  auto backend = shared_file_backend(client);
  ASSERT_FALSE(backend);
  EXPECT_THAT(backend.error().message(), HasSubstr("'mem0' (memory-backend-file, share=off)"));
  EXPECT_THAT(backend.error().message(), HasSubstr("size=256M,share=on"));
}

TEST(Memdevs, MalformedRepliesAreParseErrorsAndCommandErrorsPassThrough) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-memdev", Json{{"not", "an array"}})
                       .answer("query-memdev", Json::parse(R"([{"id": "mem0", "size": "big"}])"))
                       .answer("qom-list", Json::parse(kQomListObjects))
                       .expect("query-memdev")
                       .error("CommandNotFound", "The command query-memdev has not been found"));
  ADOPT(client, peer);
  for (int i = 0; i < 2; ++i) {
    auto devices = memdevs(client);
    ASSERT_FALSE(devices);
    EXPECT_TRUE(devices.error().is<ParseError>()) << devices.error().message();
  }
  auto devices = memdevs(client);
  ASSERT_FALSE(devices);
  EXPECT_TRUE(devices.error().is<QmpCommandFailed>()) << devices.error().message();
}

TEST(MemoryLayout, HmpErrorAlsoFallsBack) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("human-monitor-command")
                       .error("GenericError", "monitor busy")
                       .answer("qom-get", "pc-q35-7.2-machine"));
  ADOPT(client, peer);
  auto layout = memory_layout(client, MemDev{"mem0", "memory-backend-file", 0x2'0000'0000, true, {}});
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->regions().size(), 2u);
  EXPECT_EQ(layout->regions()[1].file_offset, 0x8000'0000u);
}

TEST(MemoryLayout, UnknownMachineSaysWhyMtreeWasNotUsed) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer_hmp("info mtree -f", "garbage")
                       .answer("qom-get", "microvm-machine"));
  ADOPT(client, peer);
  auto layout = memory_layout(client, MemDev{"mem0", "memory-backend-file", k4G, true, {}});
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<NotFound>());
  EXPECT_THAT(layout.error().message(), HasSubstr("info mtree -f"));
  EXPECT_THAT(layout.error().message(), HasSubstr("microvm-machine"));
}

TEST(MemoryLayout, DisconnectIsNotPaperedOver) {
  FakeQmpPeer peer(Transcript().negotiate().expect("human-monitor-command").close());
  ADOPT(client, peer);
  auto layout = memory_layout(client, MemDev{"mem0", "memory-backend-file", k4G, true, {}});
  ASSERT_FALSE(layout);
  EXPECT_TRUE(layout.error().is<QmpDisconnected>()) << layout.error().message();
}

TEST(Lifecycle, EachHelperSendsItsCommand) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("stop", Json::object(), Json(nullptr))
                       .answer("cont", Json::object(), Json(nullptr))
                       .answer("system_reset", Json::object(), Json(nullptr))
                       .answer("system_powerdown", Json::object(), Json(nullptr))
                       .expect("cont")
                       .error("GenericError", "Resetting the Virtual Machine is required"));
  ADOPT(client, peer);
  EXPECT_TRUE(stop(client));
  EXPECT_TRUE(cont(client));
  EXPECT_TRUE(system_reset(client));
  EXPECT_TRUE(system_powerdown(client));
  auto refused = cont(client);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is<QmpCommandFailed>());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(Quit, ReplyThenEofIsSuccess) {
  FakeQmpPeer peer(Transcript().negotiate().expect("quit").reply().event("SHUTDOWN").close());
  ADOPT(client, peer);
  auto quitted = quit(client);
  EXPECT_TRUE(quitted) << quitted.error().message();
}

TEST(Quit, EofBeforeTheReplyIsSuccess) {
  FakeQmpPeer peer(Transcript().negotiate().expect("quit").close());
  ADOPT(client, peer);
  auto quitted = quit(client);
  EXPECT_TRUE(quitted) << quitted.error().message();
  EXPECT_FALSE(client.connected());
}

TEST(Quit, RefusalAndLostSessionAreErrors) {
  FakeQmpPeer peer(Transcript().negotiate().expect("quit").error("GenericError", "no").close());
  ADOPT(client, peer);
  auto refused = quit(client);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is<QmpCommandFailed>());
  ASSERT_TRUE(peer.wait_done());
  (void)client.pump(std::chrono::milliseconds(500));  // sees the EOF
  EXPECT_FALSE(client.connected());
  auto unsent = quit(client);
  ASSERT_FALSE(unsent);
  EXPECT_TRUE(unsent.error().is<QmpDisconnected>());
}

}  // namespace
}  // namespace haywire::qmp
