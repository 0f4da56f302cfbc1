#include "haywire/glass/uffd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "glass/uapi.h"

namespace haywire::glass {
namespace {

std::uint64_t to_bits(const UffdFeatures& f) {
  std::uint64_t bits = 0;
  if (f.wp_async) bits |= UFFD_FEATURE_WP_ASYNC;
  if (f.wp_unpopulated) bits |= UFFD_FEATURE_WP_UNPOPULATED;
  if (f.thread_id) bits |= UFFD_FEATURE_THREAD_ID;
  if (f.event_fork) bits |= UFFD_FEATURE_EVENT_FORK;
  if (f.event_remap) bits |= UFFD_FEATURE_EVENT_REMAP;
  if (f.event_remove) bits |= UFFD_FEATURE_EVENT_REMOVE;
  if (f.event_unmap) bits |= UFFD_FEATURE_EVENT_UNMAP;
  return bits;
}

UffdFeatures from_bits(std::uint64_t bits) {
  return UffdFeatures{
      .wp_async = (bits & UFFD_FEATURE_WP_ASYNC) != 0,
      .wp_unpopulated = (bits & UFFD_FEATURE_WP_UNPOPULATED) != 0,
      .thread_id = (bits & UFFD_FEATURE_THREAD_ID) != 0,
      .event_fork = (bits & UFFD_FEATURE_EVENT_FORK) != 0,
      .event_remap = (bits & UFFD_FEATURE_EVENT_REMAP) != 0,
      .event_remove = (bits & UFFD_FEATURE_EVENT_REMOVE) != 0,
      .event_unmap = (bits & UFFD_FEATURE_EVENT_UNMAP) != 0,
  };
}

std::string hint_for(int err) {
  switch (err) {
    case EBUSY: return "the range is already registered with another userfaultfd context";
    case EINVAL: return "the range is not page-aligned, not fully mapped, or the mapping type cannot be write-protected";
    case ENOENT: return "the range is not registered with this context";
    case EAGAIN: return "the target's layout is changing: read pending userfaultfd events and retry";
    case ESRCH: return "the target process has exited";
    case EPERM: return "needs CAP_SYS_PTRACE (run as root) for fork events";
    case ENOMEM: return "the target process is exiting or out of memory";
    default: return "";
  }
}

std::unexpected<Error> ioctl_failed(std::string_view what, VirtAddr start, std::uint64_t length) {
  int err = errno;
  return fail(SystemCallFailed{fmt::format("{} on 0x{:x}+0x{:x}", what, start.value(), length), err,
                               hint_for(err)});
}

}  // namespace

std::string UffdFeatures::describe() const {
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!out.empty()) out += ',';
    out += name;
  };
  add(wp_async, "wp_async");
  add(wp_unpopulated, "wp_unpopulated");
  add(thread_id, "thread_id");
  add(event_fork, "event_fork");
  add(event_remap, "event_remap");
  add(event_remove, "event_remove");
  add(event_unmap, "event_unmap");
  return out.empty() ? "none" : out;
}

std::string_view to_string(UffdMessage::Type type) {
  switch (type) {
    case UffdMessage::Type::kPageFault: return "pagefault";
    case UffdMessage::Type::kFork: return "fork";
    case UffdMessage::Type::kRemap: return "remap";
    case UffdMessage::Type::kRemove: return "remove";
    case UffdMessage::Type::kUnmap: return "unmap";
  }
  return "unknown";
}

Result<UniqueFd> Uffd::create_raw() {
  long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOSYS)
      return fail(Unsupported{"userfaultfd", "syscall missing", "needs a kernel built with CONFIG_USERFAULTFD"});
    return fail(SystemCallFailed{"userfaultfd(2)", err,
                                 err == EPERM ? "run as root or set vm.unprivileged_userfaultfd=1" : ""});
  }
  return UniqueFd(static_cast<int>(fd));
}

Result<UffdFeatures> probe_uffd_features() {
  auto fd = Uffd::create_raw();
  if (!fd) return std::unexpected(std::move(fd.error()));
  uffdio_api api{};
  api.api = UFFD_API;
  if (::ioctl(fd->get(), UFFDIO_API, &api) != 0)
    return fail(SystemCallFailed{"UFFDIO_API (probe)", errno, ""});
  return from_bits(api.features);
}

Result<Uffd> Uffd::open(UniqueFd fd, const UffdFeatures& want) {
  if (!fd) return fail(InvalidArgument{"userfaultfd descriptor is not open"});
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = to_bits(want);
  if (::ioctl(fd.get(), UFFDIO_API, &api) != 0) {
    int err = errno;
    if (err == EINVAL) {
      // Either a feature is missing or the handshake was already done on this descriptor.
      auto offered = probe_uffd_features();
      std::string detected = offered ? "kernel offers " + offered->describe() : "cannot probe";
      if (offered && (to_bits(*offered) & to_bits(want)) == to_bits(want))
        return fail(SystemCallFailed{"UFFDIO_API", err,
                                     "UFFDIO_API was already called on this descriptor; pass a fresh one"});
      return fail(Unsupported{"userfaultfd features " + want.describe(), detected,
                              "WP_ASYNC needs Linux 6.7+, WP_UNPOPULATED 6.4+; use a newer kernel"});
    }
    return fail(SystemCallFailed{"UFFDIO_API", err, hint_for(err)});
  }
  // The kernel reports everything it supports; what we asked for is what is on.
  UffdFeatures on = want;
  if (want.wp_async) on.wp_unpopulated = true;
  // Non-blocking reads; the flag lives on the open file, which the target no longer uses.
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    return fail(SystemCallFailed{"fcntl(O_NONBLOCK) on userfaultfd", errno, ""});
  return Uffd(std::move(fd), on);
}

Uffd Uffd::adopt(UniqueFd fd, const UffdFeatures& features) {
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  return Uffd(std::move(fd), features);
}

Result<void> Uffd::register_wp(VirtAddr start, std::uint64_t length) {
  uffdio_register reg{};
  reg.range.start = start.value();
  reg.range.len = length;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (::ioctl(fd_.get(), UFFDIO_REGISTER, &reg) != 0)
    return ioctl_failed("UFFDIO_REGISTER(WP)", start, length);
  if ((reg.ioctls & (std::uint64_t{1} << _UFFDIO_WRITEPROTECT)) == 0)
    return fail(Unsupported{"userfaultfd write-protect on this mapping",
                            fmt::format("0x{:x}+0x{:x}", start.value(), length), "skip this region"});
  return {};
}

Result<void> Uffd::unregister(VirtAddr start, std::uint64_t length) {
  uffdio_range range{start.value(), length};
  if (::ioctl(fd_.get(), UFFDIO_UNREGISTER, &range) != 0)
    return ioctl_failed("UFFDIO_UNREGISTER", start, length);
  return {};
}

Result<void> Uffd::write_protect(VirtAddr start, std::uint64_t length, bool enable, bool dont_wake) {
  uffdio_writeprotect wp{};
  wp.range.start = start.value();
  wp.range.len = length;
  wp.mode = (enable ? UFFDIO_WRITEPROTECT_MODE_WP : 0) | (dont_wake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
  if (::ioctl(fd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0)
    return ioctl_failed(enable ? "UFFDIO_WRITEPROTECT(on)" : "UFFDIO_WRITEPROTECT(off)", start, length);
  return {};
}

Result<std::optional<UffdMessage>> Uffd::read_message() {
  uffd_msg msg{};
  while (true) {
    ssize_t n = ::read(fd_.get(), &msg, sizeof msg);
    if (n == static_cast<ssize_t>(sizeof msg)) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return std::optional<UffdMessage>{};
    if (n < 0) return fail(SystemCallFailed{"read(userfaultfd)", errno, hint_for(errno)});
    return fail(IoError{fmt::format("short read of {} bytes from userfaultfd", n), 0});
  }
  UffdMessage out;
  switch (msg.event) {
    case UFFD_EVENT_PAGEFAULT:
      out.type = UffdMessage::Type::kPageFault;
      out.address = VirtAddr(msg.arg.pagefault.address);
      out.write = (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
      out.wp = (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
      out.thread_id = msg.arg.pagefault.feat.ptid;
      break;
    case UFFD_EVENT_FORK:
      out.type = UffdMessage::Type::kFork;
      out.child_uffd = UniqueFd(static_cast<int>(msg.arg.fork.ufd));
      break;
    case UFFD_EVENT_REMAP:
      out.type = UffdMessage::Type::kRemap;
      out.address = VirtAddr(msg.arg.remap.from);
      out.new_address = VirtAddr(msg.arg.remap.to);
      out.length = msg.arg.remap.len;
      break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
      out.type = msg.event == UFFD_EVENT_REMOVE ? UffdMessage::Type::kRemove : UffdMessage::Type::kUnmap;
      out.address = VirtAddr(msg.arg.remove.start);
      out.end = VirtAddr(msg.arg.remove.end);
      break;
    default:
      return fail(ParseError{"userfaultfd message", fmt::format("unknown event 0x{:x}", msg.event)});
  }
  return std::optional<UffdMessage>(std::move(out));
}

Result<bool> Uffd::wait_readable(int timeout_ms, int also_fd) const {
  pollfd pfd[2] = {{fd_.get(), POLLIN, 0}, {also_fd, POLLIN, 0}};
  int n = ::poll(pfd, also_fd >= 0 ? 2 : 1, timeout_ms);
  if (n < 0 && errno == EINTR) return false;
  if (n < 0) return fail(SystemCallFailed{"poll(userfaultfd)", errno, ""});
  return (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

}  // namespace haywire::glass
