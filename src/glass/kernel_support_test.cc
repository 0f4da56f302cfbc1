#include "haywire/glass/kernel_support.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fmt/format.h>
#include <thread>

#include "glass/testing/attach_child.h"
#include "glass/uapi.h"

namespace haywire::glass {
namespace {

TEST(KernelRelease, Parses) {
  auto v = parse_kernel_release("6.18.44-fc-v657");
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->major, 6);
  EXPECT_EQ(v->minor, 18);
  EXPECT_EQ(v->patch, 44);
  EXPECT_EQ(v->release, "6.18.44-fc-v657");
  auto two = parse_kernel_release("5.10");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->patch, 0);
  EXPECT_LT(*two, *v);
  EXPECT_EQ(*parse_kernel_release("6.1.0-18-amd64"), *parse_kernel_release("6.1"));
}

TEST(KernelRelease, RejectsJunk) {
  for (const char* bad : {"", "6", "x.y", ".1.2", "6.", "99999999999.1", "-6.1"}) {
    EXPECT_FALSE(parse_kernel_release(bad)) << bad;
  }
}

// The machines this runs on have 6.7+ and run the tests as root: everything must be there.
TEST(KernelSupport, ProbesThisKernel) {
  const KernelSupport& k = kernel_support();
  EXPECT_EQ(&k, &kernel_support()) << "probed once";
  EXPECT_GE(k.version.major, 6);
  ASSERT_TRUE(k.userfaultfd);
  EXPECT_TRUE(k.user_mode_only);
  EXPECT_EQ(k.full_mode, k.cap_sys_ptrace || k.unprivileged_sysctl == 1);
  EXPECT_TRUE(k.has(UFFD_FEATURE_PAGEFAULT_FLAG_WP));
  EXPECT_TRUE(k.has(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                    UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP));
  if (k.version >= KernelVersion{6, 7, 0, ""}) {
    EXPECT_TRUE(k.has(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED));
    EXPECT_TRUE(k.pagemap_scan);
    EXPECT_TRUE(require_async_tracking(k)) << require_async_tracking(k).error().message();
  }
  EXPECT_TRUE(k.pidfd_getfd);
  EXPECT_TRUE(require_thread_id(k));
  EXPECT_TRUE(require_pidfd_getfd(k));
}

KernelSupport kernel_like(int major, int minor, std::uint64_t features, bool scan) {
  KernelSupport k;
  k.version = *parse_kernel_release(std::to_string(major) + "." + std::to_string(minor) + ".0");
  k.userfaultfd = k.full_mode = k.user_mode_only = true;
  k.features = features;
  k.ioctls = 1ULL << _UFFDIO_REGISTER;
  k.pagemap_scan = scan;
  k.pidfd_getfd = true;
  return k;
}

TEST(KernelSupport, OldKernelSaysWhichKernelToInstall) {
  // 6.1 (Debian 12): WP and THREAD_ID, no WP_ASYNC, no PAGEMAP_SCAN.
  auto k = kernel_like(6, 1, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID, false);
  auto async = require_async_tracking(k);
  ASSERT_FALSE(async);
  ASSERT_TRUE(async.error().is<Unsupported>());
  std::string text = async.error().message();
  EXPECT_NE(text.find("WP_ASYNC"), std::string::npos) << text;
  EXPECT_NE(text.find("6.7"), std::string::npos) << text;
  EXPECT_NE(text.find("kernel 6.1.0"), std::string::npos) << text;
  EXPECT_NE(text.find("bookworm-backports"), std::string::npos) << text;
  EXPECT_TRUE(require_thread_id(k));

  // WP_ASYNC but no PAGEMAP_SCAN (6.4-6.6).
  k.features |= UFFD_FEATURE_WP_ASYNC;
  auto scan = require_async_tracking(k);
  ASSERT_FALSE(scan);
  EXPECT_NE(scan.error().message().find("PAGEMAP_SCAN"), std::string::npos);
}

TEST(KernelSupport, NoWriteProtectIsRefused) {
  auto k = kernel_like(5, 4, UFFD_FEATURE_EVENT_FORK, false);
  auto mode = require_async_tracking(k);
  ASSERT_FALSE(mode);
  ASSERT_TRUE(mode.error().is<Unsupported>());
  EXPECT_NE(mode.error().message().find("5.7"), std::string::npos) << mode.error().message();
  EXPECT_FALSE(require_thread_id(k));
}

TEST(KernelSupport, MissingUserfaultfdSaysWhatToDo) {
  auto k = kernel_like(6, 1, 0, false);
  k.full_mode = k.user_mode_only = false;
  k.userfaultfd_errno = EPERM;
  auto denied = require_userfaultfd(k);
  ASSERT_FALSE(denied);
  ASSERT_TRUE(denied.error().is<SystemCallFailed>());
  EXPECT_NE(denied.error().message().find("vm.unprivileged_userfaultfd"), std::string::npos);

  k.userfaultfd = false;
  k.userfaultfd_errno = ENOSYS;
  auto absent = require_userfaultfd(k);
  ASSERT_FALSE(absent);
  ASSERT_TRUE(absent.error().is<Unsupported>());
  EXPECT_NE(absent.error().message().find("CONFIG_USERFAULTFD"), std::string::npos);

  k.pidfd_getfd = false;
  auto pidfd = require_pidfd_getfd(k);
  ASSERT_FALSE(pidfd);
  EXPECT_NE(pidfd.error().message().find("haywire glass --"), std::string::npos) << "fallback named";
}

TEST(LookupProcess, FindsAChild) {
  auto child = testing::start_child({GLASS_STATIC_TARGET});
  ASSERT_EQ(child.line(), "static main");
  auto info = lookup_process(Pid(child.pid));
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->name, "glass_static_ta");  // comm is 15 characters
  EXPECT_EQ(info->threads, 1);
  EXPECT_EQ(info->tracer_pid, 0);
}

TEST(LookupProcess, MissingProcessIsNotFound) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);  // reaped: the PID is free (and not reused this soon)
  auto info = lookup_process(Pid(pid));
  ASSERT_FALSE(info);
  ASSERT_TRUE(info.error().is<NotFound>());
  EXPECT_NE(info.error().message().find(fmt::format("process {} not found", pid)), std::string::npos)
      << info.error().message();
  EXPECT_FALSE(lookup_process(Pid(0)));
  EXPECT_FALSE(lookup_process(Pid(-5)));
}

TEST(LookupProcess, ZombieAndThreadIds) {
  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  // Wait until it is a zombie without reaping it.
  siginfo_t si{};
  waitid(P_PID, static_cast<id_t>(zombie), &si, WEXITED | WNOWAIT);
  auto z = lookup_process(Pid(zombie));
  ASSERT_FALSE(z);
  EXPECT_NE(z.error().message().find("exited"), std::string::npos) << z.error().message();
  waitpid(zombie, nullptr, 0);

  pid_t tid = 0;
  std::atomic<bool> done{false};
  std::thread t([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (tid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto thread = lookup_process(Pid(tid));
  done = true;
  t.join();
  ASSERT_FALSE(thread);
  EXPECT_TRUE(thread.error().is<InvalidArgument>()) << thread.error().message();
}

TEST(LookupProcess, AlreadyTracedIsSaid) {
  auto child = testing::start_child({GLASS_STATIC_TARGET});
  ASSERT_EQ(child.line(), "static main");
  ASSERT_EQ(ptrace(PTRACE_SEIZE, child.pid, nullptr, nullptr), 0);
  auto info = lookup_process(Pid(child.pid));
  ASSERT_FALSE(info);
  ASSERT_TRUE(info.error().is<AlreadyExists>()) << info.error().message();
  EXPECT_NE(info.error().message().find("already traced"), std::string::npos);
}

// A process we may not trace: an unprivileged user looking at PID 1.
TEST(LookupProcess, PermissionDeniedNamesTheWayOut) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    if (setgid(testing::kNobody) != 0 || setuid(testing::kNobody) != 0) _exit(2);
    auto info = lookup_process(Pid(1));
    std::string text = info ? "ok" : std::string(info.error().name()) + " " + info.error().message();
    (void)!write(pipe_fds[1], text.data(), text.size());
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "could not drop to nobody";
  EXPECT_TRUE(text.starts_with("PermissionDenied")) << text;
  EXPECT_NE(text.find("CAP_SYS_PTRACE"), std::string::npos) << text;
  EXPECT_NE(text.find("/proc/sys/kernel/yama/ptrace_scope"), std::string::npos) << text;
}

}  // namespace
}  // namespace haywire::glass
