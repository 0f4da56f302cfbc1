// Errors are values. Each kind is a small struct that carries what a person needs to act;
// Error wraps one of them plus optional context ("while attaching to VM 'demo'").
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <utility>
#include <variant>

namespace haywire {

struct FileNotFound {
  std::string path;
};
struct PermissionDenied {
  std::string path;
};
struct MmapFailed {
  std::string path;
  int err = 0;  // errno
};
struct InvalidAddress {
  std::uint64_t addr = 0;
  std::uint64_t len = 0;
  std::uint64_t max = 0;  // end of guest RAM (highest guest-physical address + 1)
};
struct SizeMismatch {
  std::string path;
  std::uint64_t actual = 0;
  std::uint64_t expected = 0;
};
struct IoError {
  std::string what;
  int err = 0;  // errno, 0 if none
};
struct ParseError {
  std::string what;    // what was being parsed
  std::string detail;  // where and why it failed
};
struct QmpCommandFailed {
  std::string command;
  std::string error_class;  // QEMU's "class", e.g. GenericError
  std::string desc;
};
struct QmpDisconnected {
  std::string why;
};
struct Timeout {
  std::string what;
  int milliseconds = 0;
};
struct NotFound {
  std::string what;
  std::string hint;  // what to do about it
};
struct InvalidArgument {
  std::string what;
};
struct AlreadyExists {
  std::string what;
  std::string hint;
};
struct ProcessFailed {
  std::string what;
  std::string detail;  // e.g. the tail of a log
};
// The running kernel lacks something (too old, a feature compiled out or disabled).
struct Unsupported {
  std::string feature;   // e.g. "userfaultfd UFFD_FEATURE_WP_ASYNC"
  std::string detected;  // what was found, e.g. "kernel 6.1.0"
  std::string hint;      // what to do: the minimum version, a sysctl, a fallback
};
// A system call failed for a reason no other kind describes (userfaultfd ioctls, ptrace...).
struct SystemCallFailed {
  std::string operation;  // e.g. "UFFDIO_REGISTER on 0x7f..000+0x21000"
  int err = 0;            // errno
  std::string hint;
};

using ErrorKind = std::variant<FileNotFound, PermissionDenied, MmapFailed, InvalidAddress,
                               SizeMismatch, IoError, ParseError, QmpCommandFailed,
                               QmpDisconnected, Timeout, NotFound, InvalidArgument,
                               AlreadyExists, ProcessFailed, Unsupported, SystemCallFailed>;

class Error {
 public:
  template <class Kind>
    requires std::is_constructible_v<ErrorKind, Kind&&>
  Error(Kind&& kind)  // NOLINT(google-explicit-constructor): errors convert from their kinds
      : kind_(std::forward<Kind>(kind)) {}

  [[nodiscard]] const ErrorKind& kind() const { return kind_; }
  template <class Kind>
  [[nodiscard]] bool is() const {
    return std::holds_alternative<Kind>(kind_);
  }
  template <class Kind>
  [[nodiscard]] const Kind* as() const {
    return std::get_if<Kind>(&kind_);
  }

  // Prepends context, innermost last: "attaching to VM 'x': guest RAM file ... not found".
  Error&& with_context(std::string context) && {
    context_ = context_.empty() ? std::move(context) : std::move(context) + ": " + context_;
    return std::move(*this);
  }

  // One line a person can act on.
  [[nodiscard]] std::string message() const;
  // Short machine-readable name of the kind ("FileNotFound", ...).
  [[nodiscard]] std::string_view name() const;

 private:
  ErrorKind kind_;
  std::string context_;
};

template <class T>
using Result = std::expected<T, Error>;

// Shorthand for returning an error from a function that returns Result<T>.
template <class Kind>
std::unexpected<Error> fail(Kind&& kind) {
  return std::unexpected<Error>(Error(std::forward<Kind>(kind)));
}

// IoError from the current errno.
IoError io_error(std::string what);

}  // namespace haywire
