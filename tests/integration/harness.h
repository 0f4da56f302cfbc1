// Shared pieces of the integration tests: real QEMU VMs booted from the default guest image,
// QEMU's own monitor as the oracle, and the `haywire` CLI run as a subprocess.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "haywire/base/parse.h"
#include "haywire/guest/ram.h"
#include "haywire/qmp/client.h"
#include "haywire/vm/vm.h"

namespace haywire::itest {

using namespace std::chrono_literals;

// Boots with the default guest and waits for userspace; the test fails loudly if it cannot.
inline vm::VmInfo boot(const std::string& name, std::uint64_t mem = 256ull << 20, const std::string& marker = "") {
  auto info = vm::up(vm::VmSpec{.name = name, .mem_size = mem, .accel = vm::Accel::kTcg, .marker = marker,
                                .timeout = std::chrono::seconds(120), .wait_ready = true});
  if (!info) {
    std::fprintf(stderr, "cannot boot VM %s: %s\n", name.c_str(), info.error().message().c_str());
    std::abort();
  }
  return *info;
}

inline std::string unique_name(const std::string& stem) { return stem + "-" + std::to_string(::getpid()); }

// One default-guest VM booted for a whole test binary, shut down at the end and checked gone.
class SharedVm : public ::testing::Environment {
 public:
  explicit SharedVm(std::string stem) : stem_(std::move(stem)) {}
  static inline vm::VmInfo info;
  void SetUp() override { info = boot(unique_name(stem_)); }
  void TearDown() override {
    auto down = vm::down(info.name);
    EXPECT_TRUE(down.has_value()) << down.error().message();
    EXPECT_FALSE(std::filesystem::exists(info.mem_path));
    EXPECT_FALSE(std::filesystem::exists(info.run_dir));
  }

 private:
  std::string stem_;
};

inline const vm::VmInfo& vmi() { return SharedVm::info; }

inline guest::GuestRam open_ram() {
  auto ram = guest::GuestRam::open(vmi().mem_path, vmi().mem_size, vmi().layout);
  if (!ram) {
    std::fprintf(stderr, "cannot open the shared VM's RAM: %s\n", ram.error().message().c_str());
    std::abort();
  }
  return std::move(*ram);
}

// QEMU's `xp /Nxb ADDR` through HMP, parsed into bytes.
inline std::optional<std::vector<unsigned char>> qemu_xp(qmp::Client& client, std::uint64_t addr, int n) {
  auto out = client.hmp("xp /" + std::to_string(n) + "xb 0x" + fmt::format("{:x}", addr));
  if (!out) return std::nullopt;
  std::vector<unsigned char> bytes;
  std::istringstream lines(*out);
  std::string line;
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) return std::nullopt;  // an error message, not a dump
    std::istringstream words(line.substr(colon + 1));
    std::string w;
    while (words >> w) {
      auto v = parse_u64(w);
      if (!v || *v > 0xff) return std::nullopt;
      bytes.push_back(static_cast<unsigned char>(*v));
    }
  }
  if (bytes.size() != static_cast<std::size_t>(n)) return std::nullopt;
  return bytes;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the haywire CLI with `args`, capturing stdout and stderr.
inline CommandResult run_cli(const std::vector<std::string>& args) {
  std::string out_path = "/tmp/haywire_itest_out_" + std::to_string(::getpid());
  std::string err_path = "/tmp/haywire_itest_err_" + std::to_string(::getpid());
  std::string cmd = HAYWIRE_CLI;
  for (const auto& a : args) {
    std::string quoted = "'";
    for (char c : a) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    cmd += " " + quoted + "'";
  }
  cmd += " >" + out_path + " 2>" + err_path;
  int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      char buf[65536];
      while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
      std::fclose(f);
    }
    std::remove(p.c_str());
    return s;
  };
  return CommandResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path), slurp(err_path)};
}

}  // namespace haywire::itest
