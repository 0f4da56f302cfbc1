#include "haywire/vm/attach.h"

#include <fmt/format.h>

#include "haywire/qmp/commands.h"
#include "haywire/vm/vm.h"

namespace haywire::vm {

Result<Target> Target::make(std::string name, std::string qmp_path) {
  if (name.empty() == qmp_path.empty())
    return fail(InvalidArgument{"name a VM (NAME) or a QMP socket (--qmp PATH), not both or neither"});
  if (!name.empty())
    if (auto ok = validate_name(name); !ok) return std::unexpected(ok.error());
  return Target{std::move(name), std::move(qmp_path)};
}

Result<qmp::Client> connect_qmp(const Target& target) {
  std::string socket = target.qmp_path;
  if (socket.empty()) {
    auto info = load(target.name);
    if (!info) return std::unexpected(info.error());
    socket = info->qmp;
  }
  auto client = qmp::Client::connect(socket, 5s);
  if (!client) return std::unexpected(std::move(client.error()).with_context(fmt::format("QMP of '{}'", target.label())));
  return client;
}

Result<Attachment> attach(const Target& target) {
  if (!target.name.empty()) {
    auto info = load(target.name);
    if (!info) return std::unexpected(info.error());
    auto ram = guest::GuestRam::open(info->mem_path, info->mem_size, info->layout);
    if (!ram) return std::unexpected(std::move(ram.error()).with_context(fmt::format("VM '{}'", target.name)));
    return Attachment{target.name, info->qmp, info->mem_path, info->backend_id, std::move(*ram)};
  }
  auto client = connect_qmp(target);
  if (!client) return std::unexpected(client.error());
  auto backend = qmp::shared_file_backend(*client);
  if (!backend) return std::unexpected(std::move(backend.error()).with_context(target.qmp_path));
  auto layout = qmp::memory_layout(*client, *backend);
  if (!layout) return std::unexpected(std::move(layout.error()).with_context(target.qmp_path));
  auto ram = guest::GuestRam::open(*backend->mem_path, backend->size, std::move(*layout));
  if (!ram) return std::unexpected(std::move(ram.error()).with_context(target.qmp_path));
  return Attachment{target.qmp_path, target.qmp_path, *backend->mem_path, backend->id, std::move(*ram)};
}

Result<guest::SnapshotReport> snapshot_paused(const Target& target, const guest::GuestRam& ram,
                                              guest::Snapshot& into) {
  auto client = connect_qmp(target);
  if (!client) return std::unexpected(client.error());
  auto status = qmp::query_status(*client);
  if (!status) return std::unexpected(status.error());
  if (status->running)
    if (auto stopped = qmp::stop(*client); !stopped) return std::unexpected(stopped.error());
  auto report = guest::take_snapshot(ram, into);
  if (status->running)
    if (auto resumed = qmp::cont(*client); !resumed)
      return std::unexpected(std::move(resumed.error()).with_context("resuming the VM after the snapshot"));
  return report;
}

}  // namespace haywire::vm
