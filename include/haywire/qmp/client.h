// QMP (QEMU Machine Protocol) client over a unix socket.
//
// Single-threaded by design and safe to share: every call takes an internal mutex. No reader
// thread: replies are read by execute(), and asynchronous events that arrive meanwhile (or
// during pump()) are delivered to subscribers on the calling thread. fd() lets an event loop
// (the control bus) poll the socket and call pump() when it is readable.
//
// QEMU 7.2 serves one client per -qmp socket at a time: a second client connects but receives
// no greeting until the first disconnects. connect() reports that as a Timeout with a hint.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "haywire/base/error.h"
#include "haywire/base/fd.h"

namespace haywire::qmp {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// A reply or event larger than this closes the session with an error.
inline constexpr std::size_t kMaxMessageBytes = 16u << 20;

struct Event {
  std::string name;     // "STOP", "RESUME", "SHUTDOWN", "RESET", "POWERDOWN", ...
  Json data;            // the event's "data" member (null if absent)
  double timestamp = 0;  // seconds since the epoch, from QEMU's timestamp
};

class Client {
 public:
  using Subscriber = std::function<void(const Event&)>;

  // Connects, reads the greeting and negotiates capabilities.
  static Result<Client> connect(const std::string& socket_path,
                                std::chrono::milliseconds timeout = 5s);
  // Same over an already connected stream socket (tests use a socketpair with a fake peer).
  static Result<Client> adopt(UniqueFd fd, std::chrono::milliseconds timeout = 5s);

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // Runs one command and returns its "return" member. An {"error": ...} reply becomes
  // QmpCommandFailed; EOF, a malformed or oversized message becomes QmpDisconnected (and the
  // session is closed); no reply in time becomes Timeout (a late reply is discarded).
  Result<Json> execute(std::string_view command, const Json& arguments = nullptr,
                       std::chrono::milliseconds timeout = 10s);

  // human-monitor-command passthrough ("info registers", "xp /16xb 0x1000", ...).
  Result<std::string> hmp(std::string_view command_line, std::optional<int> cpu_index = {},
                          std::chrono::milliseconds timeout = 10s);

  // Subscribers see every event, in arrival order, on the thread that read it (when several
  // threads call at once, on the one already delivering, which keeps the order). Delivery
  // happens outside the I/O lock, so a subscriber may call back into the Client.
  int subscribe(Subscriber subscriber);
  void unsubscribe(int token);
  // Reads what arrives within `timeout` (0: only what is already buffered/readable) and
  // delivers events. Returns how many events were delivered.
  Result<int> pump(std::chrono::milliseconds timeout);

  // Stays open until the Client is destroyed: after a disconnect it is only shut down (it
  // polls readable and pump() reports QmpDisconnected), so its number is never reused early.
  [[nodiscard]] int fd() const;
  [[nodiscard]] bool connected() const;
  [[nodiscard]] const Json& greeting() const;  // {"QMP": {"version": ..., "capabilities": ...}}

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace haywire::qmp
