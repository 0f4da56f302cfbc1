// Attach costs, each next to the floor it cannot beat, measured in the same run:
//   inject (seize, 2 injected system calls, pidfd_getfd, restore, detach) vs a bare
//   seize/interrupt/detach of the same thread; launch under the agent (handshake + go-ahead)
//   vs a plain spawn of the same program. Both targets are glass_attach_target.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include "glass/testing/attach_child.h"
#include "haywire/glass/attach.h"

namespace haywire::glass {
namespace {

testing::Child sleeping_target() {
  auto child = testing::start_child({GLASS_ATTACH_TARGET, "--threads", "2", "--rounds", "1000000",
                                     "--leader", "sleep", "--sleep-ms", "1000000"});
  child.line();
  child.line();
  return child;
}

void BM_InjectOneUserfaultfd(benchmark::State& state) {
  auto target = sleeping_target();
  for (auto _ : state) {
    auto uffds = inject_userfaultfds(Pid(target.pid), 1);
    if (!uffds) {
      state.SkipWithError(uffds.error().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(uffds->fds[0].get());
  }
}
BENCHMARK(BM_InjectOneUserfaultfd)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The floor: stopping and releasing the same thread, nothing run in it.
void BM_SeizeInterruptDetach(benchmark::State& state) {
  auto target = sleeping_target();
  for (auto _ : state) {
    ptrace(PTRACE_SEIZE, target.pid, nullptr, nullptr);
    ptrace(PTRACE_INTERRUPT, target.pid, nullptr, nullptr);
    int status = 0;
    waitpid(target.pid, &status, __WALL);
    ptrace(PTRACE_DETACH, target.pid, nullptr, nullptr);
  }
}
BENCHMARK(BM_SeizeInterruptDetach)->Unit(benchmark::kMicrosecond)->UseRealTime();

const std::vector<std::string> kQuickRun = {GLASS_ATTACH_TARGET, "--threads", "1", "--rounds", "0",
                                            "--leader", "busy", "--sleep-ms", "0"};

void BM_LaunchWithAgent(benchmark::State& state) {
  UniqueFd null(open("/dev/null", O_WRONLY | O_CLOEXEC));
  LaunchOptions options;
  options.stdout_fd = null.get();
  for (auto _ : state) {
    auto target = launch_with_agent(kQuickRun, 1, options);
    if (!target) {
      state.SkipWithError(target.error().message().c_str());
      break;
    }
    (void)target->release();
    (void)target->wait();
  }
}
BENCHMARK(BM_LaunchWithAgent)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_SpawnPlain(benchmark::State& state) {
  UniqueFd null(open("/dev/null", O_WRONLY | O_CLOEXEC));
  std::vector<char*> argv;
  for (const auto& a : kQuickRun) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, null.get(), 1);
  for (auto _ : state) {
    pid_t pid = -1;
    posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    waitpid(pid, nullptr, 0);
  }
  posix_spawn_file_actions_destroy(&actions);
}
BENCHMARK(BM_SpawnPlain)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace haywire::glass

BENCHMARK_MAIN();
