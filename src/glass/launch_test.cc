#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/format.h>

#include "glass/agent_protocol.h"
#include "glass/launch_internal.h"
#include "glass/testing/attach_child.h"
#include "haywire/glass/attach.h"

namespace haywire::glass {
namespace {

using std::chrono::milliseconds;
namespace proto = agent_protocol;

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == 0) {
      r.reset(fds[0]);
      w.reset(fds[1]);
    }
  }
};

std::optional<std::string> read_line(int fd, milliseconds timeout) {
  testing::Child reader;  // borrow its line reader without owning a process
  reader.stdout_r.reset(fd);
  auto l = reader.line(timeout);
  reader.stdout_r.release();
  return l;
}

std::vector<std::string> target_args(std::vector<std::string> extra) {
  std::vector<std::string> args{GLASS_ATTACH_TARGET};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The same program and arguments without glass: what the target must print.
std::string reference_output(const std::vector<std::string>& args) {
  auto child = testing::start_child(args);
  std::string out = child.rest();
  child.wait();
  return out;
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(Launch, HandsOverDescriptorsHoldsTargetAndLeavesNoTrace) {
  // An LD_PRELOAD the user already had must survive, in front of ours, and reach main().
  ScopedEnv preload("LD_PRELOAD", "libm.so.6");
  auto args = target_args({"--print-env", "--threads", "2", "--rounds", "20", "--leader", "busy",
                           "--sleep-ms", "5"});
  Pipe out;
  LaunchOptions options;
  options.stdout_fd = out.w.get();
  auto target = launch_with_agent(args, 2, options);
  ASSERT_TRUE(target) << target.error().message();
  out.w.reset();
  ASSERT_EQ(target->uffds.fds.size(), 2U);
  EXPECT_FALSE(target->uffds.user_mode_only) << "root may create full descriptors";
  EXPECT_EQ(testing::count_userfaultfds(target->pid.value()), 0) << "the agent keeps no copy";
  for (const auto& fd : target->uffds.fds) {
    auto features = testing::uffd_api(fd.get());
    ASSERT_TRUE(features) << "UFFDIO_API failed: " << std::strerror(errno);
    EXPECT_TRUE(testing::registers_in_target(fd.get(), target->pid.value()))
        << "descriptor does not watch the target's memory";
  }
  // Held before main(): nothing printed until the go-ahead.
  EXPECT_EQ(read_line(out.r.get(), milliseconds(200)), std::nullopt);
  ASSERT_TRUE(target->release());
  EXPECT_EQ(read_line(out.r.get(), milliseconds(5000)), "main");
  EXPECT_EQ(read_line(out.r.get(), milliseconds(5000)), "LD_PRELOAD=libm.so.6");
  EXPECT_EQ(read_line(out.r.get(), milliseconds(5000)), "HAYWIRE_GLASS_AGENT_FD=(unset)");
  std::string rest;
  while (auto l = read_line(out.r.get(), milliseconds(10000))) rest += *l + "\n";
  auto status = target->wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  std::string expected = reference_output(args);
  EXPECT_EQ("main\nLD_PRELOAD=libm.so.6\nHAYWIRE_GLASS_AGENT_FD=(unset)\n" + rest, expected);
}

TEST(Launch, WithoutPreloadTheTargetSeesNone) {
  ScopedEnv preload("LD_PRELOAD", nullptr);
  Pipe out;
  LaunchOptions options;
  options.stdout_fd = out.w.get();
  auto target = launch_with_agent(target_args({"--print-env", "--rounds", "1", "--leader", "busy",
                                               "--sleep-ms", "1"}),
                                   1, options);
  ASSERT_TRUE(target) << target.error().message();
  out.w.reset();
  ASSERT_TRUE(target->release());
  EXPECT_EQ(read_line(out.r.get(), milliseconds(5000)), "main");
  EXPECT_EQ(read_line(out.r.get(), milliseconds(5000)), "LD_PRELOAD=(unset)");
  while (read_line(out.r.get(), milliseconds(10000))) {
  }
  EXPECT_TRUE(target->wait());
}

TEST(Launch, NoGoAheadRunsUntrackedAfterTheTimeout) {
  Pipe err;
  LaunchOptions options;
  options.stderr_fd = err.w.get();
  UniqueFd null(open("/dev/null", O_WRONLY | O_CLOEXEC));
  options.stdout_fd = null.get();
  options.go_ahead_timeout = milliseconds(200);
  auto target = launch_with_agent(target_args({"--rounds", "1", "--leader", "busy", "--sleep-ms", "1"}),
                                  1, options);
  ASSERT_TRUE(target) << target.error().message();
  err.w.reset();
  auto line = read_line(err.r.get(), milliseconds(5000));
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("no go-ahead"), std::string::npos) << *line;
  auto status = target->wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_FALSE(target->release()) << "the agent stopped listening";
}

TEST(Launch, DroppingTheHandleLetsTheTargetRun) {
  Pipe err;
  LaunchOptions options;
  options.stderr_fd = err.w.get();
  UniqueFd null(open("/dev/null", O_WRONLY | O_CLOEXEC));
  options.stdout_fd = null.get();
  auto target = launch_with_agent(target_args({"--rounds", "1", "--leader", "busy", "--sleep-ms", "1"}),
                                  1, options);
  ASSERT_TRUE(target) << target.error().message();
  err.w.reset();
  target->control.reset();
  auto line = read_line(err.r.get(), milliseconds(5000));
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("monitor went away"), std::string::npos) << *line;
  EXPECT_TRUE(target->wait());
}

TEST(Launch, StaticBinaryTimesOutAndSaysUsePid) {
  Pipe out;
  LaunchOptions options;
  options.stdout_fd = out.w.get();
  options.handshake_timeout = milliseconds(300);
  std::vector<std::string> args{GLASS_STATIC_TARGET};
  auto target = launch_with_agent(args, 1, options);
  ASSERT_FALSE(target);
  ASSERT_TRUE(target.error().is<Timeout>()) << target.error().message();
  EXPECT_NE(target.error().message().find("--pid"), std::string::npos) << target.error().message();
  errno = 0;
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1) << "the started program was killed and reaped";
  EXPECT_EQ(errno, ECHILD);
}

TEST(Launch, ProgramExitingFirstIsReported) {
  std::vector<std::string> args{GLASS_STATIC_TARGET, "exit-now"};
  auto target = launch_with_agent(args, 1);
  ASSERT_FALSE(target);
  ASSERT_TRUE(target.error().is<ProcessFailed>()) << target.error().message();
  EXPECT_NE(target.error().message().find("exited with status 3"), std::string::npos)
      << target.error().message();
}

TEST(Launch, CommandNotFound) {
  for (std::string name : {"/nonexistent/haywire-test-cmd", "haywire-no-such-command"}) {
    std::vector<std::string> args{name};
    auto target = launch_with_agent(args, 1);
    ASSERT_FALSE(target);
    ASSERT_TRUE(target.error().is<NotFound>()) << target.error().message();
    EXPECT_NE(target.error().message().find("not found"), std::string::npos);
  }
  std::vector<std::string> none;
  EXPECT_FALSE(launch_with_agent(none, 1));
  std::vector<std::string> args{GLASS_ATTACH_TARGET};
  EXPECT_FALSE(launch_with_agent(args, 0));
  EXPECT_FALSE(launch_with_agent(args, 17));
}

TEST(Launch, MissingAgent) {
  std::vector<std::string> args{GLASS_ATTACH_TARGET};
  LaunchOptions options;
  options.agent_path = "/nonexistent/libhaywire-glass-agent.so";
  auto target = launch_with_agent(args, 1, options);
  ASSERT_FALSE(target);
  EXPECT_TRUE(target.error().is<FileNotFound>()) << target.error().message();

  ScopedEnv env(proto::kPathEnv, "/nonexistent/agent.so");
  auto found = find_agent();
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message().find(proto::kPathEnv), std::string::npos);
}

TEST(Launch, FindsTheBuiltAgent) {
  ScopedEnv env(proto::kPathEnv, nullptr);
  auto found = find_agent();
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_TRUE(found->ends_with(proto::kFileName));
}

// Unprivileged (vm.unprivileged_userfaultfd = 0 here): the agent falls back to
// UFFD_USER_MODE_ONLY and says so.
TEST(Launch, UnprivilegedTargetGetsUserModeOnlyDescriptors) {
  Pipe report;
  pid_t pid = fork();
  if (pid == 0) {
    report.r.reset();
    if (setgid(testing::kNobody) != 0 || setuid(testing::kNobody) != 0) _exit(2);
    std::vector<std::string> args = target_args({"--rounds", "1", "--leader", "busy", "--sleep-ms", "1"});
    LaunchOptions options;
    options.stdout_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    auto target = launch_with_agent(args, 1, options);
    std::string text;
    if (!target) {
      text = "error " + target.error().message();
    } else {
      bool api = testing::uffd_api(target->uffds.fds[0].get()).has_value();
      text = fmt::format("ok user_mode_only={} api={}", target->uffds.user_mode_only, api);
      (void)target->release();
      (void)target->wait();
    }
    (void)!write(report.w.get(), text.data(), text.size());
    _exit(0);
  }
  report.w.reset();
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(report.r.get(), buf, sizeof(buf))) > 0) text.append(buf, static_cast<std::size_t>(n));
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(text, "ok user_mode_only=true api=true");
}

// ---- the monitor's side of the protocol against hostile agents ----

int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

Result<TargetUffds> receive(const void* bytes, std::size_t size, std::vector<int> fds, int expected) {
  int pair[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  EXPECT_EQ(proto::send_with_descriptors(b.get(), bytes, size, fds.data(), fds.size(), 0), static_cast<ssize_t>(size));
  return receive_agent_hello(a.get(), expected);
}

proto::Hello good_hello(std::uint32_t count) {
  proto::Hello h{};
  h.magic = proto::kMagic;
  h.version = proto::kVersion;
  h.size = sizeof(h);
  h.pid = 1;
  h.count = count;
  return h;
}

TEST(AgentProtocol, HostileMessagesAreRefusedAndLeakNothing) {
  Pipe p;  // ordinary descriptors posing as userfaultfds
  const int before = open_fd_count();
  struct Case {
    const char* name;
    proto::Hello hello;
    std::size_t size;
    std::vector<int> fds;
  };
  auto wrong = [](auto edit) {
    auto h = good_hello(1);
    edit(h);
    return h;
  };
  std::vector<Case> cases = {
      {"short", good_hello(1), 10, {p.r.get()}},
      {"magic", wrong([](auto& h) { h.magic = 0; }), sizeof(proto::Hello), {p.r.get()}},
      {"version", wrong([](auto& h) { h.version = 9; }), sizeof(proto::Hello), {p.r.get()}},
      {"size field", wrong([](auto& h) { h.size = 4; }), sizeof(proto::Hello), {p.r.get()}},
      {"count > attached", good_hello(3), sizeof(proto::Hello), {p.r.get()}},
      {"count < attached", good_hello(1), sizeof(proto::Hello), {p.r.get(), p.w.get()}},
      {"not a userfaultfd", good_hello(1), sizeof(proto::Hello), {p.r.get()}},
      {"more than asked", good_hello(2), sizeof(proto::Hello), {p.r.get(), p.w.get()}},
  };
  for (const auto& c : cases) {
    auto got = receive(&c.hello, c.size, c.fds, 1);
    ASSERT_FALSE(got) << c.name;
    EXPECT_TRUE(got.error().is<ParseError>()) << c.name << ": " << got.error().message();
  }
  auto failed = good_hello(0);
  failed.err = EPERM;
  auto got = receive(&failed, sizeof(failed), {}, 1);
  ASSERT_FALSE(got);
  ASSERT_TRUE(got.error().is<SystemCallFailed>());
  EXPECT_NE(got.error().message().find("vm.unprivileged_userfaultfd"), std::string::npos);
  EXPECT_EQ(open_fd_count(), before) << "received descriptors leaked";
}

}  // namespace
}  // namespace haywire::glass
