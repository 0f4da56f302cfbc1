#include "haywire/vm/vm.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "haywire/base/fd.h"
#include "haywire/qmp/client.h"
#include "haywire/qmp/commands.h"
#include "haywire/vm/image.h"

namespace haywire::vm {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

constexpr const char* kBackendId = "mem0";

std::string getenv_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

std::string tail_of_file(const std::string& path, std::size_t max_bytes = 2000) {
  auto text = read_text_file(path, 64 << 20);
  if (!text) return {};
  std::string t = text->size() > max_bytes ? text->substr(text->size() - max_bytes) : *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t;
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

// Runs argv, waits for it, stderr and stdout appended to log_path. Returns the exit status.
Result<int> run_and_wait(const std::vector<std::string>& argv, const std::string& log_path) {
  auto log = open_file(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!log) return std::unexpected(log.error());
  auto null_in = open_file("/dev/null", O_RDONLY);
  if (!null_in) return std::unexpected(null_in.error());
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: execvp's API
  args.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) return fail(io_error("fork"));
  if (child == 0) {
    ::dup2(null_in->get(), 0);
    ::dup2(log->get(), 1);
    ::dup2(log->get(), 2);
    ::setsid();  // detached from our terminal and process group: Ctrl-C here does not reach QEMU
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return fail(io_error("waitpid"));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

bool pid_alive(int pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie (exited, not yet reaped by its new parent) is not alive.
  auto stat = read_text_file(fmt::format("/proc/{}/stat", pid), 1 << 16);
  if (!stat) return false;
  auto close_paren = stat->rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= stat->size() || (*stat)[close_paren + 2] != 'Z';
}

Result<qmp::Client> connect_with_retry(const std::string& socket, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto client = qmp::Client::connect(socket, 2s);
    if (client) return client;
    if (std::chrono::steady_clock::now() >= deadline) return client;
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

Result<Accel> parse_accel(std::string_view text) {
  if (text == "auto") return Accel::kAuto;
  if (text == "tcg") return Accel::kTcg;
  if (text == "kvm") return Accel::kKvm;
  return fail(InvalidArgument{fmt::format("unknown accelerator '{}' (use auto, tcg or kvm)", text)});
}

bool kvm_accelerated() {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) return false;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    return line.find(" vmx") != std::string::npos || line.find(" svm") != std::string::npos;
  }
  return false;
}

std::string runtime_root() {
  if (auto dir = getenv_or_empty("HAYWIRE_RUN_DIR"); !dir.empty()) return dir;
  if (auto xdg = getenv_or_empty("XDG_RUNTIME_DIR"); !xdg.empty()) return xdg + "/haywire";
  if (::geteuid() == 0) return "/run/haywire";
  return fmt::format("/tmp/haywire-{}", ::geteuid());
}

Result<void> validate_name(std::string_view name) {
  auto ok_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (!first && (c == '_' || c == '-' || c == '.'));
  };
  bool valid = !name.empty() && name.size() <= 48;
  for (std::size_t i = 0; valid && i < name.size(); ++i) valid = ok_char(name[i], i == 0);
  if (!valid)
    return fail(InvalidArgument{fmt::format(
        "invalid VM name '{}': use 1-48 letters, digits, '_', '-' or '.', starting with a letter or digit", name)});
  return {};
}

std::string mem_path_for(std::string_view name) { return fmt::format("/dev/shm/qemu_ram_{}", name); }

std::vector<std::string> qemu_command(const VmSpec& spec, const std::string& run_dir,
                                      const std::string& kernel, const std::string& initrd,
                                      bool use_kvm) {
  std::string marker = spec.marker.empty() ? spec.name : spec.marker;
  std::string append = "console=ttyS0 quiet panic=-1 haywire.marker=" + marker;
  if (!spec.append.empty()) append += " " + spec.append;
  return {
      "qemu-system-x86_64",
      "-name", spec.name,
      "-machine", fmt::format("q35,memory-backend={}", kBackendId),
      "-accel", use_kvm ? "kvm" : "tcg",
      "-cpu", use_kvm ? "host" : "max",
      "-smp", std::to_string(spec.cpus),
      "-m", fmt::format("{}", spec.mem_size >> 20) + "M",
      "-object", fmt::format("memory-backend-file,id={},mem-path={},size={},share=on", kBackendId,
                             mem_path_for(spec.name), spec.mem_size),
      "-nodefaults", "-no-user-config", "-display", "none",
      "-serial", "file:" + run_dir + "/serial.log",
      // Test-guest control channel: the default guest runs a root shell on its second serial
      // port (/dev/ttyS1, guest/init.d/05-control-shell); tests connect to this socket to kill
      // processes or restart the companion. Removed with the run directory by `vm down`.
      "-chardev", "socket,id=ctl,path=" + run_dir + "/guest-shell.sock,server=on,wait=off",
      "-device", "isa-serial,chardev=ctl",
      "-qmp", "unix:" + run_dir + "/qmp.sock,server=on,wait=off",
      "-qmp", "unix:" + run_dir + "/qmp-bus.sock,server=on,wait=off",
      "-kernel", kernel, "-initrd", initrd, "-append", append,
      "-no-reboot",
      "-pidfile", run_dir + "/qemu.pid",
      "-daemonize",
  };
}

Json to_json(const VmInfo& info) {
  Json regions = Json::array();
  for (const RamRegion& r : info.layout.regions())
    regions.push_back({{"start", r.start.value()}, {"size", r.size}, {"file_offset", r.file_offset}});
  return Json{{"name", info.name},         {"run_dir", info.run_dir},   {"qmp", info.qmp},
              {"bus_qmp", info.bus_qmp},   {"mem_path", info.mem_path}, {"mem_size", info.mem_size},
              {"backend_id", info.backend_id}, {"serial_log", info.serial_log},
              {"qemu_log", info.qemu_log}, {"pid", info.pid},           {"accel", info.accel},
              {"machine", info.machine},   {"kernel", info.kernel},     {"initrd", info.initrd},
              {"marker", info.marker},     {"layout", regions}};
}

Result<VmInfo> vm_info_from_json(const Json& j) {
  if (!j.is_object()) return fail(ParseError{"vm.json", "not an object"});
  VmInfo info;
  auto str = [&](const char* key, std::string& out) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) out = it->get<std::string>();
  };
  str("name", info.name);
  str("run_dir", info.run_dir);
  str("qmp", info.qmp);
  str("bus_qmp", info.bus_qmp);
  str("mem_path", info.mem_path);
  str("backend_id", info.backend_id);
  str("serial_log", info.serial_log);
  str("qemu_log", info.qemu_log);
  str("accel", info.accel);
  str("machine", info.machine);
  str("kernel", info.kernel);
  str("initrd", info.initrd);
  str("marker", info.marker);
  if (auto it = j.find("mem_size"); it != j.end() && it->is_number_unsigned()) info.mem_size = it->get<std::uint64_t>();
  if (auto it = j.find("pid"); it != j.end() && it->is_number_integer()) info.pid = it->get<int>();
  if (info.name.empty() || info.qmp.empty() || info.mem_path.empty())
    return fail(ParseError{"vm.json", "name, qmp or mem_path missing"});
  std::vector<RamRegion> regions;
  if (auto it = j.find("layout"); it != j.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (!r.is_object() || !r.contains("start") || !r.contains("size") || !r.contains("file_offset") ||
          !r["start"].is_number_unsigned() || !r["size"].is_number_unsigned() || !r["file_offset"].is_number_unsigned())
        return fail(ParseError{"vm.json", "malformed layout entry"});
      regions.push_back({PhysAddr(r["start"].get<std::uint64_t>()), r["size"].get<std::uint64_t>(),
                         r["file_offset"].get<std::uint64_t>()});
    }
  }
  if (!regions.empty()) {
    auto layout = RamLayout::make(std::move(regions), info.mem_size);
    if (!layout) return std::unexpected(std::move(layout.error()).with_context("vm.json layout"));
    info.layout = std::move(*layout);
  }
  return info;
}

bool is_vm_process(int pid, const std::string& mem_path) {
  if (!pid_alive(pid)) return false;
  auto cmdline = read_text_file(fmt::format("/proc/{}/cmdline", pid), 1 << 20);
  return cmdline && cmdline->find("mem-path=" + mem_path) != std::string::npos;
}

Result<VmInfo> load(std::string_view name) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  std::string path = runtime_root() + "/" + std::string(name) + "/vm.json";
  auto text = read_text_file(path);
  if (!text) {
    if (text.error().is<FileNotFound>())
      return fail(NotFound{fmt::format("no VM named '{}'", name), "see `haywire vm ls`, or start one with `haywire vm up`"});
    return std::unexpected(text.error());
  }
  auto j = Json::parse(*text, nullptr, false);
  if (j.is_discarded()) return fail(ParseError{path, "not JSON"});
  return vm_info_from_json(j);
}

Result<VmInfo> up(const VmSpec& spec) {
  if (auto ok = validate_name(spec.name); !ok) return std::unexpected(ok.error());
  if (spec.mem_size < (16ull << 20) || spec.mem_size % (1ull << 20) != 0)
    return fail(InvalidArgument{"--mem must be a whole number of MiB, at least 16M"});
  if (!spec.marker.empty() && validate_name(spec.marker).has_value() == false)
    return fail(InvalidArgument{fmt::format("invalid marker '{}'", spec.marker)});

  std::string kernel = spec.kernel, initrd = spec.initrd;
  if (kernel.empty() != initrd.empty())
    return fail(InvalidArgument{"--kernel and --initrd go together"});
  if (kernel.empty()) {
    auto image = default_guest_image();
    if (!image) return std::unexpected(image.error());
    kernel = image->kernel;
    initrd = image->initrd;
  }
  for (const auto& f : {kernel, initrd})
    if (!fs::exists(f)) return fail(FileNotFound{f});

  bool use_kvm = spec.accel == Accel::kKvm || (spec.accel == Accel::kAuto && kvm_accelerated());
  std::string root = runtime_root();
  std::string run_dir = root + "/" + spec.name;
  std::string mem_path = mem_path_for(spec.name);
  if (run_dir.size() + 18 > 107)  // "/guest-shell.sock" is the longest name
    return fail(InvalidArgument{fmt::format("run directory {} is too long for a unix socket path; set HAYWIRE_RUN_DIR", run_dir)});

  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return fail(IoError{fmt::format("cannot create {}: {}", root, ec.message()), 0});
  ::chmod(root.c_str(), 0700);
  if (::mkdir(run_dir.c_str(), 0700) != 0) {
    if (errno == EEXIST)
      return fail(AlreadyExists{fmt::format("VM '{}' already exists ({})", spec.name, run_dir),
                                fmt::format("`haywire vm down {}` removes it", spec.name)});
    return fail(io_error("cannot create " + run_dir));
  }
  if (fs::exists(mem_path)) {
    fs::remove_all(run_dir, ec);
    return fail(AlreadyExists{fmt::format("{} already exists", mem_path),
                              fmt::format("another QEMU may use it; if not, `haywire vm down {}` removes it", spec.name)});
  }

  VmInfo info;
  info.name = spec.name;
  info.run_dir = run_dir;
  info.qmp = run_dir + "/qmp.sock";
  info.bus_qmp = run_dir + "/qmp-bus.sock";
  info.mem_path = mem_path;
  info.mem_size = spec.mem_size;
  info.backend_id = kBackendId;
  info.serial_log = run_dir + "/serial.log";
  info.qemu_log = run_dir + "/qemu.log";
  info.accel = use_kvm ? "kvm" : "tcg";
  info.machine = "q35";
  info.kernel = kernel;
  info.initrd = initrd;
  info.marker = spec.marker.empty() ? spec.name : spec.marker;
  // Recorded before QEMU starts so that `vm down` can clean up a half-started VM.
  if (auto w = write_text_file_atomic(run_dir + "/vm.json", to_json(info).dump(2) + "\n"); !w) {
    fs::remove_all(run_dir, ec);
    return std::unexpected(w.error());
  }

  auto fail_and_clean = [&](Error error) -> Result<VmInfo> {
    (void)down(spec.name, 2s);
    return std::unexpected(std::move(error));
  };

  auto argv = qemu_command(spec, run_dir, kernel, initrd, use_kvm);
  auto status = run_and_wait(argv, info.qemu_log);
  if (!status) return fail_and_clean(status.error());
  if (*status != 0)
    return fail_and_clean(ProcessFailed{fmt::format("QEMU failed to start (exit status {})", *status),
                                        tail_of_file(info.qemu_log)});
  auto pid_text = read_text_file(run_dir + "/qemu.pid");
  if (!pid_text) return fail_and_clean(pid_text.error());
  info.pid = std::atoi(pid_text->c_str());
  if (auto w = write_text_file_atomic(run_dir + "/vm.json", to_json(info).dump(2) + "\n"); !w)
    return fail_and_clean(w.error());

  auto client = connect_with_retry(info.qmp, spec.timeout);
  if (!client) return fail_and_clean(std::move(client.error()).with_context("connecting to QMP"));
  auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  while (true) {
    auto st = qmp::query_status(*client);
    if (!st) return fail_and_clean(st.error());
    if (st->running) break;
    if (std::chrono::steady_clock::now() >= deadline)
      return fail_and_clean(Timeout{fmt::format("waiting for VM '{}' to run (state {})", spec.name, st->status),
                                    static_cast<int>(spec.timeout.count())});
    std::this_thread::sleep_for(20ms);
  }
  // What QEMU says about its RAM wins over what we asked for.
  auto backend = qmp::shared_file_backend(*client);
  if (!backend) return fail_and_clean(backend.error());
  info.backend_id = backend->id;
  info.mem_size = backend->size;
  if (backend->mem_path) info.mem_path = *backend->mem_path;
  auto layout = qmp::memory_layout(*client, *backend);
  if (!layout) return fail_and_clean(layout.error());
  info.layout = std::move(*layout);
  if (auto w = write_text_file_atomic(run_dir + "/vm.json", to_json(info).dump(2) + "\n"); !w)
    return fail_and_clean(w.error());

  if (spec.wait_ready) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (auto ready = wait_for_serial(info, kReadyLine, std::max(remaining, 1000ms)); !ready)
      return fail_and_clean(ready.error());
  }
  return info;
}

std::vector<Listing> list() {
  std::vector<Listing> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(runtime_root(), ec)) {
    if (!entry.is_directory()) continue;
    auto info = load(entry.path().filename().string());
    if (!info) continue;
    Listing l{*info, "gone"};
    if (is_vm_process(info->pid, info->mem_path)) {
      auto client = qmp::Client::connect(info->qmp, 1s);
      if (!client) {
        l.status = client.error().is<Timeout>() ? "busy" : "unreachable";
      } else if (auto st = qmp::query_status(*client); st) {
        l.status = st->status;
      } else {
        l.status = "unreachable";
      }
    }
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const Listing& a, const Listing& b) { return a.info.name < b.info.name; });
  return out;
}

Result<void> down(std::string_view name, std::chrono::milliseconds grace) {
  if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  std::string run_dir = runtime_root() + "/" + std::string(name);
  std::string mem_path = mem_path_for(name);
  auto info = load(name);
  if (!info && !fs::exists(run_dir) && !fs::exists(mem_path))
    return std::unexpected(info.error());
  int pid = 0;
  if (info) {
    pid = info->pid;
    mem_path = info->mem_path;
  }
  if (pid == 0) {  // vm.json written before QEMU started: the pidfile may still tell
    if (auto t = read_text_file(run_dir + "/qemu.pid"); t) pid = std::atoi(t->c_str());
  }

  if (is_vm_process(pid, mem_path)) {
    if (info) {
      if (auto client = qmp::Client::connect(info->qmp, 1s); client) (void)qmp::quit(*client);
    }
    auto wait_gone = [&](std::chrono::milliseconds limit) {
      auto until = std::chrono::steady_clock::now() + limit;
      while (std::chrono::steady_clock::now() < until) {
        if (!pid_alive(pid)) return true;
        std::this_thread::sleep_for(20ms);
      }
      return !pid_alive(pid);
    };
    if (!wait_gone(grace)) {
      if (is_vm_process(pid, mem_path)) ::kill(pid, SIGTERM);
      if (!wait_gone(3s) && is_vm_process(pid, mem_path)) {
        ::kill(pid, SIGKILL);
        wait_gone(3s);
      }
    }
    if (pid_alive(pid)) return fail(ProcessFailed{fmt::format("QEMU (pid {}) of VM '{}' did not exit", pid, name), ""});
  }
  remove_quietly(mem_path);
  std::error_code ec;
  fs::remove_all(run_dir, ec);
  if (ec) return fail(IoError{fmt::format("cannot remove {}: {}", run_dir, ec.message()), 0});
  return {};
}

Result<void> wait_for_serial(const VmInfo& info, std::string_view needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (auto text = read_text_file(info.serial_log, 64 << 20); text && text->find(needle) != std::string::npos)
      return {};
    if (!is_vm_process(info.pid, info.mem_path))
      return fail(ProcessFailed{
          fmt::format("VM '{}' stopped before printing '{}' (too little --mem for the guest? the default guest needs 128M)",
                      info.name, needle),
          fmt::format("serial console ends with: [{}]; QEMU said: [{}]", tail_of_file(info.serial_log, 600),
                      tail_of_file(info.qemu_log, 600))});
    if (std::chrono::steady_clock::now() >= deadline)
      return fail(Timeout{fmt::format("waiting for '{}' on VM '{}' serial console ({})", needle, info.name, info.serial_log),
                          static_cast<int>(timeout.count())});
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace haywire::vm
