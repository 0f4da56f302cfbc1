#include "haywire/vm/vm.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "haywire/vm/attach.h"
#include "haywire/vm/image.h"

namespace haywire::vm {
namespace {
namespace fs = std::filesystem;

// Every test gets its own runtime root so that nothing touches real VMs.
class VmUnit : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("haywire_vm_test_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    ::setenv("HAYWIRE_RUN_DIR", root_.c_str(), 1);
  }
  void TearDown() override {
    fs::remove_all(root_);
    ::unsetenv("HAYWIRE_RUN_DIR");
  }
  fs::path root_;
};

bool contains(const std::vector<std::string>& argv, const std::string& s) {
  return std::find(argv.begin(), argv.end(), s) != argv.end();
}

TEST(VmNames, OnlySafeNamesPass) {
  EXPECT_TRUE(validate_name("demo").has_value());
  EXPECT_TRUE(validate_name("vm-1.test_2").has_value());
  EXPECT_FALSE(validate_name("").has_value());
  EXPECT_FALSE(validate_name("../etc").has_value());
  EXPECT_FALSE(validate_name("-x").has_value());
  EXPECT_FALSE(validate_name("a b").has_value());
  EXPECT_FALSE(validate_name(std::string(49, 'a')).has_value());
  EXPECT_EQ(mem_path_for("demo"), "/dev/shm/qemu_ram_demo");
}

TEST(VmAccel, Parses) {
  EXPECT_EQ(parse_accel("auto").value(), Accel::kAuto);
  EXPECT_EQ(parse_accel("tcg").value(), Accel::kTcg);
  EXPECT_EQ(parse_accel("kvm").value(), Accel::kKvm);
  EXPECT_FALSE(parse_accel("hvf").has_value());
}

TEST(VmCommand, SharesRamThroughDevShmAndHasTwoQmpSockets) {
  VmSpec spec{.name = "t1", .mem_size = 256ull << 20, .append = "foo=1", .marker = "m1"};
  auto argv = qemu_command(spec, "/run/x/t1", "/k", "/i", false);
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_TRUE(contains(argv, "memory-backend-file,id=mem0,mem-path=/dev/shm/qemu_ram_t1,size=268435456,share=on"));
  EXPECT_TRUE(contains(argv, "q35,memory-backend=mem0"));
  EXPECT_TRUE(contains(argv, "unix:/run/x/t1/qmp.sock,server=on,wait=off"));
  EXPECT_TRUE(contains(argv, "unix:/run/x/t1/qmp-bus.sock,server=on,wait=off"));
  EXPECT_TRUE(contains(argv, "file:/run/x/t1/serial.log"));
  EXPECT_TRUE(contains(argv, "tcg"));
  EXPECT_TRUE(contains(argv, "-daemonize"));
  EXPECT_TRUE(contains(argv, "console=ttyS0 quiet panic=-1 haywire.marker=m1 foo=1"));
  auto kvm = qemu_command(spec, "/run/x/t1", "/k", "/i", true);
  EXPECT_TRUE(contains(kvm, "kvm"));
}

TEST(VmMarker, MatchesTheGuestScriptByteForByte) {
  // The guest's init runs guest/bin/haywire-marker; run the same script on the host.
  std::string script = std::string(HAYWIRE_SOURCE_DIR) + "/guest/bin/haywire-marker";
  std::string cmd = "sh " + script + " vm-7";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  ASSERT_EQ(::pclose(pipe), 0);
  EXPECT_EQ(out.size(), 4096u);
  EXPECT_EQ(out, marker_pattern("vm-7"));
  EXPECT_NE(marker_pattern("a"), marker_pattern("b"));
}

TEST_F(VmUnit, VmInfoRoundTripsThroughJson) {
  VmInfo info{.name = "x", .run_dir = "/r/x", .qmp = "/r/x/qmp.sock", .mem_path = "/dev/shm/qemu_ram_x",
              .mem_size = 4ull << 30, .backend_id = "mem0", .pid = 42, .accel = "tcg"};
  info.layout = RamLayout::make({{PhysAddr(0), 2ull << 30, 0}, {PhysAddr(4ull << 30), 2ull << 30, 2ull << 30}},
                                4ull << 30).value();
  auto back = vm_info_from_json(to_json(info));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->name, "x");
  EXPECT_EQ(back->pid, 42);
  EXPECT_EQ(back->mem_size, 4ull << 30);
  EXPECT_EQ(back->layout.regions(), info.layout.regions());
}

TEST_F(VmUnit, HostileVmJsonIsRejected) {
  EXPECT_FALSE(vm_info_from_json(nlohmann::json::array()).has_value());
  EXPECT_FALSE(vm_info_from_json({{"name", "x"}}).has_value());
  auto j = nlohmann::json{{"name", "x"}, {"qmp", "q"}, {"mem_path", "m"}, {"mem_size", 4096},
                          {"layout", {{{"start", 0}, {"size", 8192}, {"file_offset", 0}}}}};
  EXPECT_FALSE(vm_info_from_json(j).has_value());  // layout past the file
  j["layout"] = {{{"start", "zero"}}};
  EXPECT_FALSE(vm_info_from_json(j).has_value());
}

TEST_F(VmUnit, UnknownVmIsNotFoundWithAHint) {
  auto info = load("nosuchvm");
  ASSERT_FALSE(info.has_value());
  EXPECT_TRUE(info.error().is<NotFound>());
  EXPECT_NE(info.error().message().find("haywire vm ls"), std::string::npos);
  EXPECT_FALSE(down("nosuchvm").has_value());
  EXPECT_TRUE(list().empty());
  EXPECT_FALSE(attach(Target{"nosuchvm", ""}).has_value());
  EXPECT_FALSE(Target::make("a", "/b").has_value());
  EXPECT_FALSE(Target::make("", "").has_value());
}

TEST_F(VmUnit, DownCleansUpAVmWhoseQemuIsGone) {
  // A VM recorded with a pid that is not QEMU (this test's own pid): down must not kill it,
  // and must remove the run directory and the RAM file.
  std::string name = "gone" + std::to_string(::getpid());
  fs::create_directories(root_ / name);
  VmInfo info{.name = name, .run_dir = (root_ / name).string(), .qmp = (root_ / name / "qmp.sock").string(),
              .mem_path = mem_path_for(name), .mem_size = 1 << 20, .pid = ::getpid()};
  std::ofstream(root_ / name / "vm.json") << to_json(info).dump();
  std::ofstream(info.mem_path) << "ram";
  auto listed = list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status, "gone");
  ASSERT_TRUE(down(name).has_value());
  EXPECT_FALSE(fs::exists(root_ / name));
  EXPECT_FALSE(fs::exists(info.mem_path));
}

TEST_F(VmUnit, UpRefusesBadInputBeforeStartingAnything) {
  EXPECT_TRUE(up(VmSpec{.name = "bad name"}).error().is<InvalidArgument>());
  EXPECT_TRUE(up(VmSpec{.name = "small", .mem_size = 1 << 20}).error().is<InvalidArgument>());
  EXPECT_TRUE(up(VmSpec{.name = "half", .kernel = "/k"}).error().is<InvalidArgument>());
  EXPECT_TRUE(up(VmSpec{.name = "nofile", .kernel = "/nonexistent/k", .initrd = "/nonexistent/i"}).error().is<FileNotFound>());
  fs::create_directories(root_ / "taken");
  EXPECT_TRUE(up(VmSpec{.name = "taken", .kernel = "/dev/null", .initrd = "/dev/null"}).error().is<AlreadyExists>());
}

TEST_F(VmUnit, QemuFailingToStartIsReportedAndLeavesNothing) {
  // A kernel that is not a kernel: QEMU exits at startup with a message we must pass on.
  auto bogus = root_ / "not-a-kernel";
  std::ofstream(bogus) << "garbage";
  std::string name = "fail" + std::to_string(::getpid());
  auto result = up(VmSpec{.name = name, .mem_size = 64 << 20, .accel = Accel::kTcg,
                          .kernel = bogus.string(), .initrd = bogus.string(), .timeout = std::chrono::seconds(20)});
  ASSERT_FALSE(result.has_value());
  EXPECT_TRUE(result.error().is<ProcessFailed>()) << result.error().message();
  EXPECT_FALSE(fs::exists(root_ / name));
  EXPECT_FALSE(fs::exists(mem_path_for(name)));
}

}  // namespace
}  // namespace haywire::vm
