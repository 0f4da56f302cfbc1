// A fake QEMU for tests: plays QEMU's side of a scripted QMP conversation in a thread, over
// a socketpair (hand client_fd() to Client::adopt) or a unix socket (Client::connect).
//
//   FakeQmpPeer peer(Transcript().negotiate().expect("stop").event("STOP").reply({}));
//   auto client = Client::adopt(peer.take_client_fd());
//   ...
//   EXPECT_TRUE(peer.wait_done()); EXPECT_THAT(peer.problems(), IsEmpty());
//
// The peer never blocks a test forever: every wait is bounded, and when the client says
// something the script did not expect the peer records a problem and hangs up, so the client
// sees QmpDisconnected instead of waiting for a reply that will not come.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "haywire/base/fd.h"
#include "haywire/qmp/client.h"

namespace haywire::qmp::testing {

// What QEMU 7.2 (Debian 12) greets with.
Json qemu_7_2_greeting();

class Transcript {
 public:
  // Greeting, the client's qmp_capabilities and its empty reply: how every session starts.
  Transcript& negotiate();
  Transcript& greeting(Json qmp_member = qemu_7_2_greeting());
  // Waits for the client to send `command` and remembers its id for reply()/error().
  // `arguments`: nullopt accepts any; null requires none; an object must match exactly.
  Transcript& expect(std::string command, std::optional<Json> arguments = std::nullopt);
  // {"return": value, "id": <id of the last expected command>} (no id if it had none).
  Transcript& reply(Json value = Json::object());
  Transcript& reply_with_id(Json id, Json value);
  Transcript& error(std::string error_class, std::string desc);
  Transcript& event(std::string name, Json data = nullptr);
  // Exactly these bytes: malformed, oversized or split messages.
  Transcript& send_raw(std::string bytes);
  Transcript& pause(std::chrono::milliseconds duration);
  // Closes the connection, as QEMU does when it exits.
  Transcript& close();

  // expect(command, arguments) then reply(value).
  Transcript& answer(std::string command, Json value, std::optional<Json> arguments = std::nullopt);
  // A human-monitor-command for `command_line` answered with `output`.
  Transcript& answer_hmp(std::string command_line, std::string output);

 private:
  friend class FakeQmpPeer;
  struct Step {
    enum class Kind { kSend, kExpect, kReply, kError, kPause, kClose } kind;
    std::string text;                  // bytes to send, or the expected command
    std::optional<Json> json;          // reply value / expected arguments
    std::optional<Json> explicit_id;   // reply_with_id
    std::string error_desc;
    std::chrono::milliseconds duration{0};
  };
  std::vector<Step> steps_;
};

class FakeQmpPeer {
 public:
  // Plays `script` on one end of a socketpair; the other end is take_client_fd().
  explicit FakeQmpPeer(Transcript script,
                       std::chrono::milliseconds expect_timeout = std::chrono::seconds(5));
  // Plays `script` to the first client that connects to a new unix socket at `path`. Like
  // QEMU 7.2, later clients are left in the listen backlog and never greeted.
  static std::unique_ptr<FakeQmpPeer> listen(
      const std::string& path, Transcript script,
      std::chrono::milliseconds expect_timeout = std::chrono::seconds(5));

  FakeQmpPeer(const FakeQmpPeer&) = delete;
  FakeQmpPeer& operator=(const FakeQmpPeer&) = delete;
  ~FakeQmpPeer();  // stops wherever the script is and joins the thread

  // The client's end of the socketpair (invalid for listen()).
  UniqueFd take_client_fd();
  // Waits until every step has been played. False on timeout.
  bool wait_done(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Where the client departed from the script; empty if it said exactly what was expected.
  [[nodiscard]] std::vector<std::string> problems() const;
  // Every message the client sent, in order.
  [[nodiscard]] std::vector<Json> received() const;

 private:
  struct Listening {};
  FakeQmpPeer(Listening, UniqueFd listener, std::string path, Transcript script,
              std::chrono::milliseconds expect_timeout);

  void run();
  bool accept_client();
  bool play(const Transcript::Step& step, std::size_t index, std::optional<Json>& last_id);
  bool send_bytes(std::string_view bytes);
  // A message from the client, nullopt on timeout, EOF, stop or garbage (noted).
  std::optional<Json> receive(std::chrono::milliseconds timeout, bool* hung_up = nullptr);
  void hold_after_script();
  void note(std::string problem);

  Transcript script_;
  std::chrono::milliseconds expect_timeout_;
  UniqueFd peer_fd_;
  UniqueFd client_fd_;
  UniqueFd listener_;
  std::string socket_path_;
  std::string inbox_;

  mutable std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  std::vector<std::string> problems_;
  std::vector<Json> received_;

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace haywire::qmp::testing
