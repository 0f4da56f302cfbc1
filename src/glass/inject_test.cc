#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include "glass/testing/attach_child.h"
#include "haywire/glass/attach.h"

namespace haywire::glass {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> target_args(std::vector<std::string> extra) {
  std::vector<std::string> args{GLASS_ATTACH_TARGET};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string reference_output(const std::vector<std::string>& args, const char* input = nullptr) {
  auto child = testing::start_child(args);
  if (input) (void)!write(child.stdin_w.get(), input, std::strlen(input));
  std::string out = child.rest();
  child.wait();
  return out;
}

// Descriptors usable from here and bound to the target's memory; none left in the target.
void expect_working_descriptors(const TargetUffds& uffds, std::size_t count, pid_t pid) {
  ASSERT_EQ(uffds.fds.size(), count);
  EXPECT_EQ(testing::count_userfaultfds(pid), 0) << "a userfaultfd was left in the target";
  for (const auto& fd : uffds.fds) {
    EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    EXPECT_EQ(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ASSERT_TRUE(testing::uffd_api(fd.get())) << "UFFDIO_API: " << std::strerror(errno);
    EXPECT_TRUE(testing::registers_in_target(fd.get(), pid));
  }
}

// Injects while the main thread is in `leader` mode; the target's whole output must match a
// run without injection, and its main thread checks its own system call came back right.
void inject_and_compare(const std::string& leader, int count, int injections = 1) {
  auto args = target_args({"--threads", "3", "--rounds", "60", "--leader", leader, "--sleep-ms", "400"});
  const char* input = leader == "read" ? "go\n" : nullptr;
  auto child = testing::start_child(args);
  ASSERT_EQ(child.line(), "main");
  ASSERT_EQ(child.line(), "ready");
  for (int i = 0; i < injections; ++i) {
    const auto start = Clock::now();
    auto uffds = inject_userfaultfds(Pid(child.pid), count);
    const auto took = Clock::now() - start;
    ASSERT_TRUE(uffds) << uffds.error().message();
    expect_working_descriptors(*uffds, static_cast<std::size_t>(count), child.pid);
    EXPECT_FALSE(uffds->user_mode_only);
    std::printf("[ timing ] leader=%s count=%d: inject %.2f ms, main thread held %.3f ms\n",
                leader.c_str(), count, std::chrono::duration<double, std::milli>(took).count(),
                std::chrono::duration<double, std::milli>(uffds->target_paused).count());
  }
  if (input) (void)!write(child.stdin_w.get(), input, std::strlen(input));
  std::string out = child.rest();
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ("main\nready\n" + out, reference_output(args, input));
}

TEST(Inject, MainThreadInNanosleep) { inject_and_compare("sleep", 2); }
TEST(Inject, MainThreadInRead) { inject_and_compare("read", 1); }
TEST(Inject, MainThreadComputing) { inject_and_compare("busy", 1); }
TEST(Inject, ThreeTimesDuringOneSleep) { inject_and_compare("sleep", 1, 3); }

TEST(Inject, StaticBinaryWorksWhereThePreloadCannot) {
  auto child = testing::start_child({GLASS_STATIC_TARGET});
  ASSERT_EQ(child.line(), "static main");
  auto uffds = inject_userfaultfds(Pid(child.pid), 1);
  ASSERT_TRUE(uffds) << uffds.error().message();
  expect_working_descriptors(*uffds, 1, child.pid);
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "nanosleep restarted, exit 0";
}

TEST(Inject, SignalDuringInjectionIsDeliveredAfterwards) {
  auto args = target_args({"--threads", "1", "--rounds", "10", "--leader", "sleep", "--sleep-ms", "300"});
  auto child = testing::start_child(args);
  ASSERT_EQ(child.line(), "main");
  ASSERT_EQ(child.line(), "ready");
  InjectOptions options;
  // SIGTERM arrives while we run our calls: it must not be lost (nor act mid-injection).
  options.while_stopped = [](Pid pid) { syscall(SYS_tgkill, pid.value(), pid.value(), SIGTERM); };
  auto uffds = inject_userfaultfds(Pid(child.pid), 1, options);
  ASSERT_TRUE(uffds) << uffds.error().message();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
}

TEST(Inject, UnprivilegedTargetGetsUserModeOnly) {
  auto child = testing::start_child(
      target_args({"--threads", "1", "--rounds", "5", "--leader", "sleep", "--sleep-ms", "200"}),
      testing::kNobody);
  ASSERT_EQ(child.line(), "main");
  ASSERT_EQ(child.line(), "ready");
  auto uffds = inject_userfaultfds(Pid(child.pid), 1);
  ASSERT_TRUE(uffds) << uffds.error().message();
  EXPECT_TRUE(uffds->user_mode_only);
  expect_working_descriptors(*uffds, 1, child.pid);
  std::string out = child.rest();
  EXPECT_NE(out.find("leader sleep ok"), std::string::npos) << out;
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Inject, ProcessNotFound) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  auto uffds = inject_userfaultfds(Pid(pid), 1);
  ASSERT_FALSE(uffds);
  ASSERT_TRUE(uffds.error().is<NotFound>()) << uffds.error().message();
  EXPECT_NE(uffds.error().message().find(fmt::format("process {} not found", pid)), std::string::npos);
  EXPECT_FALSE(inject_userfaultfds(Pid(getpid()), 1));
  EXPECT_FALSE(inject_userfaultfds(Pid(1), 0));
}

TEST(Inject, TargetExitingDuringInjection) {
  auto child = testing::start_child(
      target_args({"--threads", "2", "--rounds", "50", "--leader", "sleep", "--sleep-ms", "2000"}));
  ASSERT_EQ(child.line(), "main");
  ASSERT_EQ(child.line(), "ready");
  InjectOptions options;
  options.while_stopped = [](Pid pid) { kill(pid.value(), SIGKILL); };
  auto uffds = inject_userfaultfds(Pid(child.pid), 2, options);
  ASSERT_FALSE(uffds);
  ASSERT_TRUE(uffds.error().is<NotFound>()) << uffds.error().message();
  EXPECT_NE(uffds.error().message().find("exited during injection"), std::string::npos);
  child.wait();  // already reaped by the tracer (it was also our child): fine either way
}

TEST(Inject, AlreadyTraced) {
  auto child = testing::start_child({GLASS_STATIC_TARGET});
  ASSERT_EQ(child.line(), "static main");
  ASSERT_EQ(ptrace(PTRACE_SEIZE, child.pid, nullptr, nullptr), 0);
  auto uffds = inject_userfaultfds(Pid(child.pid), 1);
  ASSERT_FALSE(uffds);
  EXPECT_TRUE(uffds.error().is<AlreadyExists>()) << uffds.error().message();
}

TEST(Inject, NotPermittedForAnotherUsersProcess) {
  auto target = testing::start_child({GLASS_STATIC_TARGET});
  ASSERT_EQ(target.line(), "static main");
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    if (setgid(testing::kNobody) != 0 || setuid(testing::kNobody) != 0) _exit(2);
    auto uffds = inject_userfaultfds(Pid(target.pid), 1);
    std::string text = uffds ? "ok" : std::string(uffds.error().name()) + " " + uffds.error().message();
    (void)!write(report[1], text.data(), text.size());
    _exit(0);
  }
  close(report[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(report[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(report[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(text.starts_with("PermissionDenied")) << text;
  EXPECT_NE(text.find("CAP_SYS_PTRACE"), std::string::npos) << text;
  EXPECT_EQ(testing::count_userfaultfds(target.pid), 0);
}

}  // namespace
}  // namespace haywire::glass
