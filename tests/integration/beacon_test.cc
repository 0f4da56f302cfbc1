// The beacon on the real default guest: the companion started by the guest's init, read by
// `haywire ps/pagemap/beacon`, compared with what the guest itself says on its serial console,
// and driven through the test guest's control shell (second serial port, guest-shell.sock).
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "haywire/base/fd.h"

namespace haywire::itest {
namespace {

using Json = nlohmann::json;

std::string serial() {
  auto text = read_text_file(vmi().serial_log, 64 << 20);
  return text ? *text : std::string();
}

// Runs `command` in the guest's root shell on /dev/ttyS1 and returns its output. The end
// marker is computed by the shell, so an echo of the command line could never match it.
std::optional<std::string> guest_shell(const std::string& command, std::chrono::seconds timeout = 30s) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = vmi().run_dir + "/guest-shell.sock";
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string line = command + "; echo HAYWIRE-CTL-$((40 + 2))\n";
  (void)!::write(fd, line.data(), line.size());
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.find("HAYWIRE-CTL-42") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto at = out.find("HAYWIRE-CTL-42");
  if (at == std::string::npos) return std::nullopt;
  out.resize(at);
  std::erase(out, '\r');
  return out;
}

std::optional<Json> cli_json(const std::vector<std::string>& args) {
  auto r = run_cli(args);
  if (r.exit_code != 0) {
    std::fprintf(stderr, "haywire %s: exit %d: %s\n", args[0].c_str(), r.exit_code, r.err.c_str());
    return std::nullopt;
  }
  try {
    return Json::parse(r.out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "haywire %s: not JSON: %s\n", args[0].c_str(), e.what());
    return std::nullopt;
  }
}

std::optional<Json> ps() { return cli_json({"ps", vmi().name, "--json", "--wait", "20000"}); }

std::optional<std::uint64_t> pids_generation(std::string* session = nullptr) {
  auto b = cli_json({"beacon", vmi().name, "--json", "--wait", "20000"});
  if (!b) return std::nullopt;
  if (session != nullptr) *session = (*b)["session_id"].get<std::string>();
  for (const auto& blk : (*b)["blocks"])
    if (blk["type"] == "pids") return blk["last_valid_generation"].get<std::uint64_t>();
  return std::nullopt;
}

bool has_pid(const Json& rows, std::uint64_t pid) {
  for (const auto& r : rows)
    if (r["pid"].get<std::uint64_t>() == pid) return true;
  return false;
}

struct SerialProcess {
  std::uint64_t pid;
  std::string command;
};

// busybox ps between HAYWIRE-PS-BEGIN/END: "  PID USER     TIME  COMMAND".
std::vector<SerialProcess> serial_ps() {
  EXPECT_TRUE(vm::wait_for_serial(vmi(), "HAYWIRE-PS-END", 120s));
  std::string text = serial();
  auto begin = text.find("HAYWIRE-PS-BEGIN");
  auto end = text.find("HAYWIRE-PS-END");
  std::vector<SerialProcess> out;
  if (begin == std::string::npos || end == std::string::npos) return out;
  std::istringstream lines(text.substr(begin, end - begin));
  std::string line;
  std::size_t columns = 0;  // busybox's header, e.g. "PID USER VSZ STAT COMMAND": COMMAND is last
  while (std::getline(lines, line)) {
    std::erase(line, '\r');
    std::istringstream words(line);
    std::vector<std::string> w;
    std::string word;
    if (columns == 0) {
      while (words >> word) w.push_back(word);
      if (!w.empty() && w.front() == "PID" && w.back() == "COMMAND") columns = w.size();
      continue;
    }
    for (std::size_t i = 0; i + 1 < columns && words >> word; ++i) w.push_back(word);
    if (w.size() + 1 != columns || w[0].find_first_not_of("0123456789") != std::string::npos) continue;
    std::string command;
    std::getline(words, command);
    command.erase(0, command.find_first_not_of(' '));
    out.push_back({std::stoull(w[0]), command});
  }
  return out;
}

// Every user process the guest listed (kernel threads, "[name]", excluded: they come and go),
// except `ps` itself, is in `haywire ps` with the same PID, and its command line starts with
// what busybox printed (busybox cuts long lines). Conversely every user process haywire lists
// with a PID the guest had already handed out is in the guest's list.
TEST(Beacon, PsAgreesWithTheGuestsOwnPs) {
  auto guest = serial_ps();
  ASSERT_FALSE(guest.empty()) << "no ps output between HAYWIRE-PS-BEGIN/END on the serial console";
  std::map<std::uint64_t, std::string> user;
  std::uint64_t max_pid = 0;
  for (const auto& p : guest) {
    max_pid = std::max(max_pid, p.pid);
    if (p.command.starts_with("[") || p.command == "ps" || p.command.starts_with("ps ")) continue;
    user[p.pid] = p.command;
  }
  ASSERT_TRUE(user.contains(1));
  std::size_t long_lived = 0;
  for (const auto& [pid, cmd] : user)
    long_lived += cmd.find("haywire-companion") != std::string::npos || cmd.find("haywire-touch") != std::string::npos;
  EXPECT_EQ(long_lived, 2u) << "the guest's ps should list haywire-companion and haywire-touch";
  // Round-robin rows need one cycle per PID: wait until every expected row has its data.
  std::optional<Json> rows;
  std::string missing;
  for (int attempt = 0; attempt < 60; ++attempt) {
    rows = ps();
    ASSERT_TRUE(rows);
    missing.clear();
    for (const auto& [pid, cmd] : user) {
      bool listed = false, with_data = false;
      for (const auto& r : *rows) {
        if (r["pid"] != pid) continue;
        listed = true;
        with_data = r["source"] != "pid-only";
      }
      // A short-lived process (the control shell's `sleep 1` between clients) may have exited
      // since the guest's ps: gone from the PID list is fine for those, never for the long-lived.
      bool stays = pid == 1 || cmd.find("haywire-companion") != std::string::npos ||
                        cmd.find("haywire-touch") != std::string::npos;
      if ((listed && !with_data) || (!listed && stays)) missing += fmt::format(" {} [{}]{}", pid, cmd, listed ? " pid-only" : " not listed");
    }
    if (missing.empty()) break;
    std::this_thread::sleep_for(500ms);
  }
  ASSERT_TRUE(missing.empty()) << "PIDs without data in haywire ps:" << missing;
  for (const auto& r : *rows) {
    auto pid = r["pid"].get<std::uint64_t>();
    std::string cmdline = r["cmdline"].is_string() ? r["cmdline"].get<std::string>() : "";
    if (auto it = user.find(pid); it != user.end()) {
      // busybox shows "{comm} args" when comm is not argv[0]'s name: compare both parts.
      if (it->second.starts_with("{") && it->second.find("} ") != std::string::npos) {
        auto close = it->second.find("} ");
        EXPECT_EQ(r["comm"].get<std::string>(), it->second.substr(1, close - 1)) << "PID " << pid;
        it->second = it->second.substr(close + 2);
      }
      EXPECT_TRUE(cmdline.starts_with(it->second) || (it->second.starts_with(cmdline) && !cmdline.empty()))
          << "PID " << pid << ": guest ps says [" << it->second << "], haywire ps says [" << cmdline << "]";
    } else if (pid <= max_pid && !cmdline.empty()) {
      ADD_FAILURE() << "haywire ps lists user process " << pid << " [" << cmdline << "] that the guest's ps did not";
    }
  }
}

TEST(Beacon, TouchedPagesAreExactlyThePresentOnes) {
  ASSERT_TRUE(vm::wait_for_serial(vmi(), "HAYWIRE-TOUCH", 120s));
  std::string text = serial();
  std::string line = text.substr(text.find("HAYWIRE-TOUCH"));
  line = line.substr(0, line.find('\n'));
  std::uint64_t pid = 0, base = 0, region = 0;
  char pages[256] = {};
  ASSERT_EQ(std::sscanf(line.c_str(), "HAYWIRE-TOUCH pid=%lu base=0x%lx region_pages=%lu pages=%255s", &pid, &base, &region, pages), 4)
      << line;
  std::set<std::uint64_t> touched;
  for (const char* p = pages; *p != '\0';) {
    char* end = nullptr;
    touched.insert(std::strtoull(p, &end, 10));
    p = *end == ',' ? end + 1 : end;
  }
  auto m = cli_json({"pagemap", vmi().name, std::to_string(pid), "--json", "--frames", "--wait", "20000", "--timeout", "20000"});
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["pid"], pid);
  EXPECT_FALSE((*m)["truncated"].get<bool>());
  std::set<std::uint64_t> present;
  for (const auto& r : (*m)["frames"]) {
    std::uint64_t va = std::stoull(r["va"].get<std::string>(), nullptr, 16);
    for (std::uint64_t i = 0; i < r["pages"].get<std::uint64_t>(); ++i) {
      std::uint64_t page = va + i * 4096;
      if (page >= base && page < base + region * 4096) present.insert((page - base) / 4096);
    }
  }
  EXPECT_EQ(present, touched) << line;
  std::fprintf(stderr, "haywire-touch camera: compression %.1fx (%s of raw pagemap)\n",
               (*m)["compression_ratio"].get<double>(), (*m)["raw_bytes"].dump().c_str());
}

TEST(Beacon, KilledProcessIsGoneWithinOneCycle) {
  auto started = guest_shell("sleep 1000 & echo PID=$!");
  ASSERT_TRUE(started) << "no answer from the guest control shell";
  auto at = started->find("PID=");
  ASSERT_NE(at, std::string::npos) << *started;
  std::uint64_t pid = std::stoull(started->substr(at + 4));
  bool seen = false;
  for (int i = 0; i < 60 && !seen; ++i) {
    auto rows = ps();
    ASSERT_TRUE(rows);
    seen = has_pid(*rows, pid);
    if (!seen) std::this_thread::sleep_for(250ms);
  }
  ASSERT_TRUE(seen) << "haywire ps never listed the new process " << pid;
  // kill + wait: when the shell answers, the process is reaped and /proc/PID is gone.
  ASSERT_TRUE(guest_shell("kill -9 " + std::to_string(pid) + "; wait " + std::to_string(pid)));
  auto killed_at = pids_generation();
  ASSERT_TRUE(killed_at);
  // Any PID-block generation after `killed_at` was scanned wholly after the kill.
  for (int i = 0; i < 100; ++i) {
    auto before = pids_generation();
    auto rows = ps();
    ASSERT_TRUE(before && rows);
    if (*before >= *killed_at + 1) {
      EXPECT_FALSE(has_pid(*rows, pid)) << "PID " << pid << " still listed at generation " << *before
                                        << " (killed at " << *killed_at << ")";
      return;
    }
    std::this_thread::sleep_for(50ms);
  }
  FAIL() << "the PID block generation did not advance past " << *killed_at;
}

TEST(Beacon, RestartedCompanionIsRediscovered) {
  std::string session0;
  ASSERT_TRUE(pids_generation(&session0));
  auto out = guest_shell(
      "kill $(pidof haywire-companion); sleep 1; setsid /bin/haywire-companion </dev/null >/dev/console 2>&1 & "
      "sleep 1; echo NEW=$(pidof haywire-companion)");
  ASSERT_TRUE(out);
  ASSERT_NE(out->find("NEW="), std::string::npos) << *out;
  std::string session1 = session0;
  for (int i = 0; i < 60 && session1 == session0; ++i) {
    ASSERT_TRUE(pids_generation(&session1));
    if (session1 == session0) std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(session1, session0) << "the host still reads the old companion's session";
  auto rows = ps();
  ASSERT_TRUE(rows);
  EXPECT_TRUE(has_pid(*rows, 1));
}

}  // namespace
}  // namespace haywire::itest

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new haywire::itest::SharedVm("beacon"));
  return RUN_ALL_TESTS();
}
