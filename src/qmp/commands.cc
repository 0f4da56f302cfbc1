#include "haywire/qmp/commands.h"

#include <map>
#include <utility>

#include <fmt/format.h>

#include "haywire/qmp/memory_layout.h"

namespace haywire::qmp {
namespace {

constexpr std::string_view kFileBackend = "memory-backend-file";

std::unexpected<Error> bad_reply(std::string_view command, std::string detail) {
  return fail(ParseError{fmt::format("the reply to '{}'", command), std::move(detail)});
}

const std::string* string_member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

std::optional<bool> bool_member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::optional<std::uint64_t> unsigned_member(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

Json qom_arguments(std::string path, std::string property = {}) {
  Json arguments = Json::object();
  arguments["path"] = std::move(path);
  if (!property.empty()) arguments["property"] = std::move(property);
  return arguments;
}

Result<void> run(Client& client, std::string_view command) {
  auto reply = client.execute(command);
  if (!reply) return std::unexpected(std::move(reply.error()));
  return {};
}

// Object id -> QOM type, from qom-list's "child<memory-backend-file>" entries.
Result<std::map<std::string, std::string>> object_types(Client& client) {
  auto listing = client.execute("qom-list", qom_arguments("/objects"));
  if (!listing) return std::unexpected(std::move(listing.error()));
  if (!listing->is_array()) return bad_reply("qom-list /objects", "expected an array");
  std::map<std::string, std::string> types;
  for (const Json& entry : *listing) {
    if (!entry.is_object()) continue;
    const std::string* name = string_member(entry, "name");
    const std::string* type = string_member(entry, "type");
    if (name == nullptr || type == nullptr) continue;
    std::string_view child = *type;
    if (!child.starts_with("child<") || !child.ends_with(">")) continue;
    child.remove_prefix(6);
    child.remove_suffix(1);
    types.emplace(*name, std::string(child));
  }
  return types;
}

Result<std::string> qom_get_string(Client& client, const std::string& path,
                                   const std::string& property) {
  auto value = client.execute("qom-get", qom_arguments(path, property));
  if (!value) return std::unexpected(std::move(value.error()));
  if (!value->is_string())
    return bad_reply(fmt::format("qom-get {} {}", path, property), "expected a string");
  return std::move(value->get_ref<std::string&>());
}

// "4G", "256M" or plain bytes: the form people pass to -m and size=.
std::string size_for_command_line(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes != 0 && bytes % (1ull << 20) == 0) return fmt::format("{}M", bytes >> 20);
  return bytes != 0 ? std::to_string(bytes) : std::string("SIZE");
}

std::string describe_backends(const std::vector<MemDev>& devices) {
  if (devices.empty()) return "QEMU reports no memory backends";
  std::string text = "QEMU reports";
  for (const MemDev& d : devices)
    text += fmt::format(" '{}' ({}, share={})", d.id, d.type.empty() ? "unknown type" : d.type,
                        d.share ? "on" : "off");
  return text;
}

}  // namespace

Result<Status> query_status(Client& client) {
  auto reply = client.execute("query-status");
  if (!reply) return std::unexpected(std::move(reply.error()));
  if (!reply->is_object()) return bad_reply("query-status", "expected an object");
  const std::string* status = string_member(*reply, "status");
  if (status == nullptr) return bad_reply("query-status", "no \"status\" string");
  // "running" is the authority; older QEMUs documented status without it.
  bool running = bool_member(*reply, "running").value_or(*status == "running");
  return Status{*status, running};
}

Result<std::vector<MemDev>> memdevs(Client& client) {
  auto devices = client.execute("query-memdev");
  if (!devices) return std::unexpected(std::move(devices.error()));
  if (!devices->is_array()) return bad_reply("query-memdev", "expected an array");
  auto types = object_types(client);
  if (!types) return std::unexpected(std::move(types.error()));

  std::vector<MemDev> result;
  for (const Json& device : *devices) {
    if (!device.is_object()) return bad_reply("query-memdev", "an entry is not an object");
    MemDev memdev;
    // Backends QEMU creates itself (plain -m, id "pc.ram") are not under /objects.
    if (const std::string* id = string_member(device, "id")) memdev.id = *id;
    auto size = unsigned_member(device, "size");
    if (!size) return bad_reply("query-memdev", fmt::format("'{}' has no size", memdev.id));
    memdev.size = *size;
    memdev.share = bool_member(device, "share").value_or(false);
    if (auto type = types->find(memdev.id); type != types->end()) memdev.type = type->second;
    if (memdev.type == kFileBackend) {
      // QEMU 7.2's query-memdev does not report the path; the object property does.
      auto path = qom_get_string(client, "/objects/" + memdev.id, "mem-path");
      if (!path) return std::unexpected(std::move(path.error()));
      memdev.mem_path = std::move(*path);
    }
    result.push_back(std::move(memdev));
  }
  return result;
}

Result<MemDev> shared_file_backend(Client& client) {
  auto devices = memdevs(client);
  if (!devices) return std::unexpected(std::move(devices.error()));
  for (MemDev& device : *devices)
    if (device.type == kFileBackend && device.share && device.mem_path) return std::move(device);
  std::string size = size_for_command_line(devices->empty() ? 0 : devices->front().size);
  return fail(NotFound{
      fmt::format("no shared memory-backend-file in this VM: {}", describe_backends(*devices)),
      fmt::format("start QEMU with -object memory-backend-file,id=mem0,mem-path=/dev/shm/"
                  "qemu_ram_NAME,size={},share=on -machine memory-backend=mem0, size as given "
                  "to -m",
                  size)});
}

Result<std::string> machine_type(Client& client) {
  return qom_get_string(client, "/machine", "type");
}

Result<RamLayout> memory_layout(Client& client, const MemDev& backend) {
  auto mtree = client.hmp("info mtree -f");
  if (!mtree && mtree.error().is<QmpDisconnected>()) return std::unexpected(std::move(mtree.error()));
  std::string mtree_problem;
  if (mtree) {
    auto layout = parse_mtree(*mtree, backend.id, backend.size);
    if (layout) return layout;
    mtree_problem = layout.error().message();
  } else {
    mtree_problem = mtree.error().message();
  }

  // QEMU's own placement rules are right for every stock q35/pc machine; the monitor is
  // only preferred because it also covers machines and options these rules do not.
  auto context = [&](std::string_view step) {
    return fmt::format("`info mtree -f` was unusable ({}); {}", mtree_problem, step);
  };
  auto type = machine_type(client);
  if (!type) return std::unexpected(std::move(type.error()).with_context(context("asking for the machine type")));
  auto layout = fallback_layout(machine_kind(*type), backend.size);
  if (!layout)
    return std::unexpected(std::move(layout.error())
                               .with_context(context(fmt::format("machine type '{}'", *type))));
  return layout;
}

Result<void> stop(Client& client) { return run(client, "stop"); }
Result<void> cont(Client& client) { return run(client, "cont"); }
Result<void> system_reset(Client& client) { return run(client, "system_reset"); }
Result<void> system_powerdown(Client& client) { return run(client, "system_powerdown"); }

Result<void> quit(Client& client) {
  if (!client.connected()) return fail(QmpDisconnected{"not connected, so 'quit' was not sent"});
  auto reply = client.execute("quit");
  // QEMU may exit before its reply leaves the socket: once 'quit' is sent, the connection
  // closing is what success looks like.
  if (reply || reply.error().is<QmpDisconnected>()) return {};
  return std::unexpected(std::move(reply.error()));
}

}  // namespace haywire::qmp
