// Fuzz target: the bytes are what "QEMU" sends (greeting, replies, events). The client must
// answer every stream with values or errors, never a crash, hang or unbounded wait.
//
// No peer thread and no waiting: the input is cut into segments, each ending after a line
// that looks like a greeting or a reply, and a segment is written into the socket just
// before the call that should read it. Calls use a zero timeout, so they read what is
// already in the socket and stop. Replies cannot be written all at once up front: the
// client rightly drops replies it finds buffered behind its own as stale.
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "haywire/qmp/client.h"

namespace {

// Small enough to fit the socket buffer; oversized messages are unit-tested.
constexpr std::size_t kMaxInput = 64 * 1024;
constexpr auto kNoWait = std::chrono::milliseconds(0);

std::vector<std::string_view> segments(std::string_view input) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  std::size_t line_start = 0;
  while (line_start < input.size()) {
    std::size_t newline = input.find('\n', line_start);
    std::size_t line_end = newline == std::string_view::npos ? input.size() : newline + 1;
    std::string_view line = input.substr(line_start, line_end - line_start);
    line_start = line_end;
    bool ends_segment = line.find("\"QMP\"") != std::string_view::npos ||
                        line.find("\"return\"") != std::string_view::npos ||
                        line.find("\"error\"") != std::string_view::npos;
    if (ends_segment || line_start == input.size()) {
      out.push_back(input.substr(start, line_start - start));
      start = line_start;
    }
  }
  return out;
}

class Feeder {
 public:
  Feeder(int fd, std::vector<std::string_view> parts) : fd_(fd), parts_(std::move(parts)) {}
  // Writes the next segment (as much as the socket takes without blocking).
  void next() {
    if (index_ >= parts_.size()) return;
    std::string_view part = parts_[index_++];
    while (!part.empty()) {
      ssize_t n = ::send(fd_, part.data(), part.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0) return;
      part.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void rest_then_eof() {
    while (index_ < parts_.size()) next();
    ::shutdown(fd_, SHUT_WR);
  }

 private:
  int fd_;
  std::vector<std::string_view> parts_;
  std::size_t index_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using haywire::qmp::Client;
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) return 0;
  haywire::UniqueFd client_end(ends[0]);
  haywire::UniqueFd peer(ends[1]);
  std::string_view input(reinterpret_cast<const char*>(data), std::min(size, kMaxInput));
  Feeder feed(peer.get(), segments(input));

  feed.next();  // greeting
  feed.next();  // answer to qmp_capabilities
  auto client = Client::adopt(std::move(client_end), kNoWait);
  if (!client) return 0;
  int events = 0;
  client->subscribe([&events](const haywire::qmp::Event& event) {
    events += event.name.empty() ? 0 : 1;
  });
  feed.next();
  (void)client->execute("query-status", nullptr, kNoWait);
  feed.next();
  (void)client->hmp("info mtree -f", 0, kNoWait);
  (void)client->pump(kNoWait);
  feed.next();
  (void)client->execute("stop", nullptr, kNoWait);
  feed.rest_then_eof();
  (void)client->pump(std::chrono::milliseconds(50));  // returns at EOF, not after 50 ms
  (void)client->execute("cont", nullptr, std::chrono::milliseconds(50));
  return 0;
}
