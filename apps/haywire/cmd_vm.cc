// haywire vm up | ls | down
#include <cstdio>

#include "cli.h"
#include "haywire/base/parse.h"
#include "haywire/vm/vm.h"

namespace haywire::cli {
namespace {

struct UpOptions {
  std::string name;
  std::string mem = "256M";
  std::string accel = "auto";
  std::string kernel, initrd, append, marker;
  int cpus = 1;
  int timeout_s = 60;
  bool wait_ready = false;
  bool json = false;
};

int vm_up(const UpOptions& o) {
  auto size = parse_size(o.mem);
  if (!size) return report(size.error());
  auto accel = vm::parse_accel(o.accel);
  if (!accel) return report(accel.error());
  vm::VmSpec spec{.name = o.name, .mem_size = *size, .accel = *accel, .cpus = o.cpus,
                  .kernel = o.kernel, .initrd = o.initrd, .append = o.append, .marker = o.marker,
                  .timeout = std::chrono::seconds(o.timeout_s), .wait_ready = o.wait_ready};
  if (spec.accel == vm::Accel::kKvm && !vm::kvm_accelerated())
    std::fprintf(stderr, "haywire: warning: KVM is not hardware-accelerated here; the guest may be slower than with TCG\n");
  if (!o.json) std::fprintf(stderr, "starting VM '%s' (%s RAM)...\n", o.name.c_str(), human_bytes(*size).c_str());
  auto info = vm::up(spec);
  if (!info) return report(info.error());
  if (o.json) {
    print_json(vm::to_json(*info));
    return kOk;
  }
  std::printf("VM '%s' is running (pid %d, %s)\n", info->name.c_str(), info->pid, info->accel.c_str());
  std::printf("  qmp         %s\n", info->qmp.c_str());
  std::printf("  qmp (bus)   %s\n", info->bus_qmp.c_str());
  std::printf("  memory      %s (%s)\n", info->mem_path.c_str(), human_bytes(info->mem_size).c_str());
  for (const RamRegion& r : info->layout.regions())
    std::printf("              guest %s-%s at file offset %s\n", hex(r.start.value()).c_str(),
                hex(r.end().value() - 1).c_str(), hex(r.file_offset).c_str());
  std::printf("  serial log  %s\n", info->serial_log.c_str());
  std::printf("  run dir     %s\n", info->run_dir.c_str());
  return kOk;
}

int vm_ls(bool json) {
  auto vms = vm::list();
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : vms) {
      auto j = vm::to_json(l.info);
      j["status"] = l.status;
      out.push_back(std::move(j));
    }
    print_json(out);
    return kOk;
  }
  if (vms.empty()) {
    std::printf("no VMs (runtime directory %s); start one with `haywire vm up NAME`\n", vm::runtime_root().c_str());
    return kOk;
  }
  std::printf("%-20s %-12s %8s %-6s %8s  %s\n", "NAME", "STATUS", "PID", "ACCEL", "MEMORY", "QMP");
  for (const auto& l : vms)
    std::printf("%-20s %-12s %8d %-6s %8s  %s\n", l.info.name.c_str(), l.status.c_str(), l.info.pid,
                l.info.accel.c_str(), human_bytes(l.info.mem_size).c_str(), l.info.qmp.c_str());
  return kOk;
}

int vm_down(const std::vector<std::string>& names, bool all) {
  std::vector<std::string> targets = names;
  if (all)
    for (const auto& l : vm::list()) targets.push_back(l.info.name);
  if (targets.empty()) {
    if (all) return kOk;
    return report(InvalidArgument{"name at least one VM, or --all"});
  }
  int code = kOk;
  for (const auto& name : targets) {
    if (auto r = vm::down(name); !r) code = report(r.error());
    else std::printf("VM '%s' is down\n", name.c_str());
  }
  return code;
}

}  // namespace

void register_vm_commands(CLI::App& app) {
  auto* vm = app.add_subcommand("vm", "Start, list and stop VMs whose RAM Haywire can see");
  vm->require_subcommand(1);

  static UpOptions up;
  auto* up_cmd = vm->add_subcommand("up", "Boot a VM (the default Debian+busybox guest unless --kernel/--initrd)");
  up_cmd->add_option("name", up.name, "VM name")->required();
  up_cmd->add_option("--mem", up.mem, "guest RAM size")->capture_default_str();
  up_cmd->add_option("--accel", up.accel, "auto, tcg or kvm (auto picks TCG unless KVM is hardware-accelerated)")
      ->capture_default_str();
  up_cmd->add_option("--cpus", up.cpus, "virtual CPUs")->capture_default_str()->check(CLI::Range(1, 64));
  up_cmd->add_option("--kernel", up.kernel, "kernel image (with --initrd)");
  up_cmd->add_option("--initrd", up.initrd, "initramfs (with --kernel)");
  up_cmd->add_option("--append", up.append, "extra kernel command-line arguments");
  up_cmd->add_option("--marker", up.marker, "id of the 4 KiB marker the default guest writes into RAM (default: NAME)");
  up_cmd->add_option("--timeout", up.timeout_s, "seconds to wait for the VM")->capture_default_str();
  up_cmd->add_flag("--wait-ready", up.wait_ready, "also wait until the guest's userspace is up");
  up_cmd->add_flag("--json", up.json, "print the VM's details as JSON");
  up_cmd->callback(run([] { return vm_up(up); }));

  static bool ls_json = false;
  auto* ls = vm->add_subcommand("ls", "List known VMs and their QMP status");
  ls->add_flag("--json", ls_json, "JSON array");
  ls->callback(run([] { return vm_ls(ls_json); }));

  static std::vector<std::string> down_names;
  static bool down_all = false;
  auto* down = vm->add_subcommand("down", "Quit a VM and remove its RAM file, sockets and run directory");
  down->add_option("names", down_names, "VM names");
  down->add_flag("--all", down_all, "every known VM");
  down->callback(run([] { return vm_down(down_names, down_all); }));
}

}  // namespace haywire::cli
