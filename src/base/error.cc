#include "haywire/base/error.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace haywire {
namespace {

std::string errno_text(int err) { return err == 0 ? std::string("unknown error") : std::strerror(err); }

struct Describe {
  std::string operator()(const FileNotFound& e) const {
    return fmt::format("{} does not exist", e.path);
  }
  std::string operator()(const PermissionDenied& e) const {
    return fmt::format("permission denied on {}: run as the user that owns it, or as root",
                       e.path);
  }
  std::string operator()(const MmapFailed& e) const {
    return fmt::format("cannot map {}: {}", e.path, errno_text(e.err));
  }
  std::string operator()(const InvalidAddress& e) const {
    return fmt::format(
        "invalid guest-physical range 0x{:x}+0x{:x}: not backed by guest RAM (RAM ends at 0x{:x}; "
        "ranges may not cross a hole)",
        e.addr, e.len, e.max);
  }
  std::string operator()(const SizeMismatch& e) const {
    return fmt::format("{} is {} bytes but QEMU reports {} bytes of RAM", e.path, e.actual,
                       e.expected);
  }
  std::string operator()(const IoError& e) const {
    return e.err == 0 ? e.what : fmt::format("{}: {}", e.what, errno_text(e.err));
  }
  std::string operator()(const ParseError& e) const {
    return fmt::format("cannot parse {}: {}", e.what, e.detail);
  }
  std::string operator()(const QmpCommandFailed& e) const {
    return fmt::format("QEMU refused '{}': {} ({})", e.command, e.desc, e.error_class);
  }
  std::string operator()(const QmpDisconnected& e) const {
    return fmt::format("QMP connection lost: {}", e.why);
  }
  std::string operator()(const Timeout& e) const {
    return fmt::format("timed out after {} ms {}", e.milliseconds, e.what);
  }
  std::string operator()(const NotFound& e) const {
    return e.hint.empty() ? e.what : fmt::format("{} ({})", e.what, e.hint);
  }
  std::string operator()(const InvalidArgument& e) const { return e.what; }
  std::string operator()(const AlreadyExists& e) const {
    return e.hint.empty() ? e.what : fmt::format("{} ({})", e.what, e.hint);
  }
  std::string operator()(const ProcessFailed& e) const {
    return e.detail.empty() ? e.what : fmt::format("{}: {}", e.what, e.detail);
  }
  std::string operator()(const Unsupported& e) const {
    std::string text = fmt::format("not supported here: {}", e.feature);
    if (!e.detected.empty()) text += fmt::format(" (found {})", e.detected);
    if (!e.hint.empty()) text += fmt::format("; {}", e.hint);
    return text;
  }
  std::string operator()(const SystemCallFailed& e) const {
    std::string text = fmt::format("{} failed: {}", e.operation, errno_text(e.err));
    if (!e.hint.empty()) text += fmt::format(" ({})", e.hint);
    return text;
  }
};

struct Name {
  std::string_view operator()(const FileNotFound&) const { return "FileNotFound"; }
  std::string_view operator()(const PermissionDenied&) const { return "PermissionDenied"; }
  std::string_view operator()(const MmapFailed&) const { return "MmapFailed"; }
  std::string_view operator()(const InvalidAddress&) const { return "InvalidAddress"; }
  std::string_view operator()(const SizeMismatch&) const { return "SizeMismatch"; }
  std::string_view operator()(const IoError&) const { return "IoError"; }
  std::string_view operator()(const ParseError&) const { return "ParseError"; }
  std::string_view operator()(const QmpCommandFailed&) const { return "QmpCommandFailed"; }
  std::string_view operator()(const QmpDisconnected&) const { return "QmpDisconnected"; }
  std::string_view operator()(const Timeout&) const { return "Timeout"; }
  std::string_view operator()(const NotFound&) const { return "NotFound"; }
  std::string_view operator()(const InvalidArgument&) const { return "InvalidArgument"; }
  std::string_view operator()(const AlreadyExists&) const { return "AlreadyExists"; }
  std::string_view operator()(const ProcessFailed&) const { return "ProcessFailed"; }
  std::string_view operator()(const Unsupported&) const { return "Unsupported"; }
  std::string_view operator()(const SystemCallFailed&) const { return "SystemCallFailed"; }
};

}  // namespace

std::string Error::message() const {
  std::string text = std::visit(Describe{}, kind_);
  return context_.empty() ? text : context_ + ": " + text;
}

std::string_view Error::name() const { return std::visit(Name{}, kind_); }

IoError io_error(std::string what) { return IoError{std::move(what), errno}; }

}  // namespace haywire
