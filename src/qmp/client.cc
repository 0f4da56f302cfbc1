#include "haywire/qmp/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include <fmt/format.h>

namespace haywire::qmp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 64 * 1024;
// nlohmann parses iteratively, but callers that dump or compare a reply recurse: refuse
// nesting no QMP reply needs rather than hand out a value that overflows their stack.
constexpr int kMaxJsonDepth = 256;
constexpr std::string_view kPeerClosed = "QEMU closed the QMP connection (did it exit?)";
constexpr std::string_view kGreetingWait =
    "waiting for the QMP greeting: another client may hold the socket (QEMU 7.2 serves one "
    "QMP client per socket at a time; close the other client, or give QEMU a second -qmp "
    "socket)";

Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  // Clamped so that "wait forever" values cannot overflow the clock.
  constexpr std::chrono::milliseconds kLongest = std::chrono::hours(24 * 365);
  return Clock::now() + std::clamp(timeout, std::chrono::milliseconds(0), kLongest);
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, INT_MAX));
}

int as_int_ms(std::chrono::milliseconds ms) {
  return static_cast<int>(std::clamp<long long>(ms.count(), 0, INT_MAX));
}

std::string errno_text(int err) { return std::strerror(err); }

// A short, printable piece of hostile input for an error message.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kShown = 60;
  std::string shown;
  for (char c : text.substr(0, kShown)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > kShown) shown += "...";
  return shown;
}

bool nesting_within(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// Never throws: strings we did not parse ourselves (a user's HMP line) may be invalid UTF-8.
std::string to_wire(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const std::string* string_member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

double number_member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : 0.0;
}

Event to_event(const Json& message, const std::string& name) {
  Event event;
  event.name = name;
  if (auto data = message.find("data"); data != message.end()) event.data = *data;
  if (auto ts = message.find("timestamp"); ts != message.end() && ts->is_object())
    event.timestamp = number_member(*ts, "seconds") + number_member(*ts, "microseconds") / 1e6;
  return event;
}

}  // namespace

struct Client::Impl {
  explicit Impl(UniqueFd socket) : fd(std::move(socket)), socket_fd(fd.get()) {}

  // ---- guarded by io_mutex ----
  std::mutex io_mutex;
  // Stays open after a disconnect (only shut down) so an event loop polling fd() never sees
  // the number reused by an unrelated descriptor while the Client lives.
  UniqueFd fd;
  const int socket_fd;
  std::string inbox;             // bytes read, [inbox_begin, size) not yet consumed
  std::size_t inbox_begin = 0;
  std::size_t scanned_to = 0;    // no '\n' in [inbox_begin, scanned_to)
  std::uint64_t next_id = 1;
  std::string closed_why;
  Json greeting;                 // set once, before the Client is handed out
  std::atomic<bool> open{true};

  // ---- guarded by events_mutex ----
  std::mutex events_mutex;
  std::deque<Event> undelivered;
  std::vector<std::pair<int, std::shared_ptr<const Subscriber>>> subscribers;
  int next_token = 1;

  // One thread delivers at a time so subscribers see events in arrival order.
  std::mutex delivery_mutex;
  std::atomic<std::thread::id> delivering_thread{};

  std::unexpected<Error> disconnect(std::string why) {
    if (open.exchange(false)) {
      closed_why = std::move(why);
      ::shutdown(socket_fd, SHUT_RDWR);
    }
    return std::unexpected<Error>(QmpDisconnected{closed_why});
  }

  Result<void> ensure_open() const {
    if (open.load()) return {};
    return fail(QmpDisconnected{"the session was closed earlier: " + closed_why});
  }

  void compact_inbox() {
    if (inbox_begin == 0 || inbox_begin < inbox.size() / 2) return;
    inbox.erase(0, inbox_begin);
    scanned_to -= inbox_begin;
    inbox_begin = 0;
  }

  // The next complete line without its "\r\n", or nullopt if none is complete yet. The view
  // is valid until the inbox is next read into.
  Result<std::optional<std::string_view>> take_line() {
    std::size_t newline = inbox.find('\n', scanned_to);
    if (newline == std::string::npos) {
      scanned_to = inbox.size();
      if (inbox.size() - inbox_begin > kMaxMessageBytes)
        return disconnect(fmt::format("QEMU sent more than {} bytes without ending the message",
                                      kMaxMessageBytes));
      return std::nullopt;
    }
    std::string_view line(inbox.data() + inbox_begin, newline - inbox_begin);
    inbox_begin = scanned_to = newline + 1;
    if (line.size() > kMaxMessageBytes)
      return disconnect(fmt::format("QEMU sent a {}-byte message (limit {})", line.size(),
                                    kMaxMessageBytes));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }

  // Waits until the socket is readable (or `deadline`) and appends what it holds to the
  // inbox. False: nothing arrived in time.
  Result<bool> read_more(Clock::time_point deadline) {
    compact_inbox();
    while (true) {
      pollfd readable{socket_fd, POLLIN, 0};
      int ready = ::poll(&readable, 1, remaining_ms(deadline));
      if (ready < 0 && errno != EINTR)
        return disconnect(fmt::format("waiting for QEMU failed: {}", errno_text(errno)));
      if (ready == 0) return false;
      if (ready < 0) continue;
      // A stack chunk, not inbox.resize(): growing the string would zero 64 KiB per read.
      char chunk[kReadChunk];
      // NOLINTNEXTLINE(clang-analyzer-unix.BlockInCriticalSection): MSG_DONTWAIT, after poll: never blocks
      ssize_t got = ::recv(socket_fd, chunk, sizeof chunk, MSG_DONTWAIT);
      int err = errno;
      if (got > 0) {
        inbox.append(chunk, static_cast<std::size_t>(got));
        return true;
      }
      // QEMU exiting with our bytes unread resets the connection instead of closing it.
      if (got == 0 || err == ECONNRESET) return disconnect(std::string(kPeerClosed));
      if (err != EINTR && err != EAGAIN && err != EWOULDBLOCK)
        return disconnect(fmt::format("reading from QEMU failed: {}", errno_text(err)));
    }
  }

  Result<Json> parse_message(std::string_view line) {
    if (!nesting_within(line, kMaxJsonDepth))
      return disconnect(fmt::format("QEMU sent JSON nested deeper than {} levels", kMaxJsonDepth));
    Json message = Json::parse(line.begin(), line.end(), nullptr, false);
    if (message.is_discarded())
      return disconnect(fmt::format("QEMU sent malformed JSON: '{}'", excerpt(line)));
    if (!message.is_object())
      return disconnect(fmt::format("QEMU sent JSON that is not an object: '{}'", excerpt(line)));
    return message;
  }

  // The next message, reading from the socket until `deadline` if `may_read`; nullopt if
  // none is complete in time. Blank lines are not messages.
  Result<std::optional<Json>> next_message(Clock::time_point deadline, bool may_read) {
    while (true) {
      auto line = take_line();
      if (!line) return std::unexpected(std::move(line.error()));
      if (*line) {
        if ((*line)->find_first_not_of(" \t\r") == std::string_view::npos) continue;
        auto message = parse_message(**line);
        if (!message) return std::unexpected(std::move(message.error()));
        return std::optional<Json>(std::move(*message));
      }
      if (!may_read) return std::nullopt;
      auto got = read_more(deadline);
      if (!got) return std::unexpected(std::move(got.error()));
      if (!*got) return std::nullopt;
    }
  }

  // Queues `message` for subscribers if it is an event. True if it was one (an "event"
  // member that is not a name is dropped, not mistaken for a reply).
  bool take_event(const Json& message) {
    if (!message.contains("event")) return false;
    if (const std::string* name = string_member(message, "event")) {
      std::lock_guard lock(events_mutex);
      undelivered.push_back(to_event(message, *name));
    }
    return true;
  }

  // Events already buffered behind a reply are queued now: an event loop polling fd() would
  // not wake up for bytes that were read out of the socket already.
  void take_buffered_events() {
    while (open.load()) {
      auto message = next_message(Clock::now(), /*may_read=*/false);
      if (!message || !*message) return;
      take_event(**message);  // anything else is a stale reply
    }
  }

  Result<void> send_all(std::string_view bytes, Clock::time_point deadline,
                        std::string_view command, std::chrono::milliseconds timeout) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(socket_fd, bytes.data() + sent, bytes.size() - sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      int err = errno;
      if (n < 0 && err == EINTR) continue;
      if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
        pollfd writable{socket_fd, POLLOUT, 0};
        if (::poll(&writable, 1, remaining_ms(deadline)) != 0) continue;
        // Half a command would desynchronise the stream for every later command.
        if (sent > 0) (void)disconnect("a command could not be sent completely in time");
        return fail(Timeout{fmt::format("sending '{}' to QEMU (it is not reading)", command),
                            as_int_ms(timeout)});
      }
      if (n == 0 || err == EPIPE || err == ECONNRESET)
        return disconnect(fmt::format("{} before '{}' was sent", kPeerClosed, command));
      return disconnect(fmt::format("sending '{}' to QEMU failed: {}", command, errno_text(err)));
    }
    return {};
  }

  // `with_id` is false only for capabilities negotiation, which QEMU expects without one.
  Result<Json> execute_locked(std::string_view command, const Json& arguments,
                              std::chrono::milliseconds timeout, bool with_id) {
    if (auto ok = ensure_open(); !ok) return std::unexpected(std::move(ok.error()));
    auto deadline = deadline_after(timeout);
    Json request = Json::object();
    request["execute"] = std::string(command);
    if (!arguments.is_null()) request["arguments"] = arguments;
    std::optional<std::uint64_t> id;
    if (with_id) {
      id = next_id++;
      request["id"] = *id;
    }
    if (auto sent = send_all(to_wire(request) + "\n", deadline, command, timeout); !sent)
      return std::unexpected(std::move(sent.error()));

    while (true) {
      auto message = next_message(deadline, /*may_read=*/true);
      if (!message) return std::unexpected(std::move(message.error()));
      if (!*message)
        return fail(Timeout{fmt::format("waiting for QEMU to answer '{}'", command),
                            as_int_ms(timeout)});
      Json& reply = **message;
      if (take_event(reply)) continue;
      if (!reply.contains("return") && !reply.contains("error")) continue;  // not QMP: ignore
      if (!answers(reply, id)) continue;  // a late reply to an earlier, timed-out command
      take_buffered_events();
      return to_result(command, reply);
    }
  }

  static bool answers(const Json& reply, std::optional<std::uint64_t> id) {
    auto reply_id = reply.find("id");
    // QEMU leaves the id out only when it could not parse the request, i.e. ours.
    if (reply_id == reply.end()) return true;
    return id && reply_id->is_number_unsigned() && reply_id->get<std::uint64_t>() == *id;
  }

  static Result<Json> to_result(std::string_view command, Json& reply) {
    if (auto value = reply.find("return"); value != reply.end()) return std::move(*value);
    const Json& error = reply["error"];
    QmpCommandFailed failed{std::string(command), "", "QEMU gave no description"};
    if (error.is_object()) {
      if (const std::string* error_class = string_member(error, "class")) failed.error_class = *error_class;
      if (const std::string* desc = string_member(error, "desc")) failed.desc = *desc;
    }
    return fail(std::move(failed));
  }

  // Reads whatever is buffered or readable right now. Returns the number of events queued.
  Result<int> read_events_now() {
    if (auto ok = ensure_open(); !ok) return std::unexpected(std::move(ok.error()));
    int events = 0;
    while (true) {
      auto message = next_message(Clock::now(), /*may_read=*/true);
      if (!message) return std::unexpected(std::move(message.error()));
      if (!*message) return events;
      if (take_event(**message)) ++events;
    }
  }

  // Called without io_mutex, so a subscriber may call back into the Client; the call made
  // from inside a subscriber leaves its events to the delivery loop already running.
  void deliver_events() {
    while (true) {
      if (delivering_thread.load() == std::this_thread::get_id()) return;
      std::unique_lock delivering(delivery_mutex, std::try_to_lock);
      if (!delivering.owns_lock()) return;  // the thread delivering now takes ours too
      delivering_thread.store(std::this_thread::get_id());
      struct ClearOwner {
        std::atomic<std::thread::id>& owner;
        ~ClearOwner() { owner.store(std::thread::id{}); }
      } clear_owner{delivering_thread};
      while (true) {
        Event event;
        std::vector<std::shared_ptr<const Subscriber>> audience;
        {
          std::lock_guard lock(events_mutex);
          if (undelivered.empty()) break;
          event = std::move(undelivered.front());
          undelivered.pop_front();
          for (const auto& entry : subscribers) audience.push_back(entry.second);
        }
        for (const auto& subscriber : audience) (*subscriber)(event);
      }
      delivering.unlock();
      // Another thread may have queued events after our last look and before we let go.
      std::lock_guard lock(events_mutex);
      if (undelivered.empty()) return;
    }
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  auto deadline = deadline_after(timeout);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path))
    return fail(InvalidArgument{fmt::format("QMP socket path '{}' is empty or longer than {} bytes",
                                            socket_path, sizeof(address.sun_path) - 1)});
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket) return fail(io_error("creating a unix socket for QMP"));
  while (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN && remaining_ms(deadline) > 0) {  // listen backlog full: QEMU is busy
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (err == ENOENT) return fail(FileNotFound{socket_path});
    if (err == EACCES || err == EPERM) return fail(PermissionDenied{socket_path});
    if (err == ECONNREFUSED)
      return fail(IoError{fmt::format("nothing is listening on QMP socket {} (has QEMU exited?)",
                                      socket_path), err});
    return fail(IoError{fmt::format("connecting to QMP socket {}", socket_path), err});
  }
  auto client = adopt(std::move(socket), std::chrono::milliseconds(remaining_ms(deadline)));
  if (!client)
    return std::unexpected(std::move(client.error()).with_context("QMP socket " + socket_path));
  return client;
}

Result<Client> Client::adopt(UniqueFd fd, std::chrono::milliseconds timeout) {
  if (!fd) return fail(InvalidArgument{"Client::adopt needs a connected socket"});
  auto impl = std::make_unique<Impl>(std::move(fd));
  {
    std::lock_guard lock(impl->io_mutex);
    auto greeting = impl->next_message(deadline_after(timeout), /*may_read=*/true);
    if (!greeting)
      return std::unexpected(std::move(greeting.error()).with_context("waiting for the QMP greeting"));
    if (!*greeting) return fail(Timeout{std::string(kGreetingWait), as_int_ms(timeout)});
    auto qmp = (*greeting)->find("QMP");
    if (qmp == (*greeting)->end() || !qmp->is_object())
      return fail(QmpDisconnected{fmt::format("expected the QMP greeting {{\"QMP\": ...}}, got '{}'",
                                              excerpt(to_wire(**greeting)))});
    impl->greeting = std::move(**greeting);
    auto negotiated = impl->execute_locked("qmp_capabilities", nullptr, timeout, /*with_id=*/false);
    if (!negotiated)
      return std::unexpected(std::move(negotiated.error()).with_context("negotiating QMP capabilities"));
  }
  impl->deliver_events();  // nobody can have subscribed yet: events before now are dropped
  return Client(std::move(impl));
}

Result<Json> Client::execute(std::string_view command, const Json& arguments,
                             std::chrono::milliseconds timeout) {
  if (!impl_) return fail(QmpDisconnected{"this Client was moved from"});
  if (!arguments.is_null() && !arguments.is_object())
    return fail(InvalidArgument{fmt::format("arguments of QMP command '{}' must be an object", command)});
  Result<Json> result = [&] {
    std::lock_guard lock(impl_->io_mutex);
    return impl_->execute_locked(command, arguments, timeout, /*with_id=*/true);
  }();
  impl_->deliver_events();
  return result;
}

Result<std::string> Client::hmp(std::string_view command_line, std::optional<int> cpu_index,
                                std::chrono::milliseconds timeout) {
  Json arguments = Json::object();
  arguments["command-line"] = std::string(command_line);
  if (cpu_index) arguments["cpu-index"] = *cpu_index;
  auto reply = execute("human-monitor-command", arguments, timeout);
  if (!reply) return std::unexpected(std::move(reply.error()));
  if (!reply->is_string())
    return fail(ParseError{"human-monitor-command reply",
                           fmt::format("expected a string, got {}", reply->type_name())});
  return std::move(reply->get_ref<std::string&>());
}

int Client::subscribe(Subscriber subscriber) {
  if (!impl_) return 0;
  std::lock_guard lock(impl_->events_mutex);
  int token = impl_->next_token++;
  impl_->subscribers.emplace_back(token, std::make_shared<const Subscriber>(std::move(subscriber)));
  return token;
}

void Client::unsubscribe(int token) {
  if (!impl_) return;
  std::lock_guard lock(impl_->events_mutex);
  std::erase_if(impl_->subscribers, [token](const auto& entry) { return entry.first == token; });
}

Result<int> Client::pump(std::chrono::milliseconds timeout) {
  if (!impl_) return fail(QmpDisconnected{"this Client was moved from"});
  auto deadline = deadline_after(timeout);
  while (true) {
    Result<int> events = [&] {
      std::lock_guard lock(impl_->io_mutex);
      return impl_->read_events_now();
    }();
    impl_->deliver_events();
    if (!events || *events > 0) return events;
    int wait = remaining_ms(deadline);
    if (wait == 0) return 0;
    // Waits without the lock so that execute() from another thread is not held up; the
    // socket stays open (at worst shut down) while the Client lives, so polling it is safe.
    pollfd readable{impl_->socket_fd, POLLIN, 0};
    ::poll(&readable, 1, wait);
  }
}

int Client::fd() const { return impl_ ? impl_->socket_fd : -1; }

bool Client::connected() const { return impl_ && impl_->open.load(); }

const Json& Client::greeting() const {
  static const Json kNone;
  return impl_ ? impl_->greeting : kNone;
}

}  // namespace haywire::qmp
