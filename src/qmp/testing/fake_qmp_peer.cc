#include "qmp/testing/fake_qmp_peer.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace haywire::qmp::testing {
namespace {

// Every blocking wait is cut into slices so that the destructor can stop the thread.
constexpr int kSliceMs = 20;

std::string line_of(const Json& message) {
  return message.dump(-1, ' ', false, Json::error_handler_t::replace) + "\r\n";
}

}  // namespace

Json qemu_7_2_greeting() {
  return Json::parse(R"({"version": {"qemu": {"micro": 0, "minor": 2, "major": 7},
                                     "package": "Debian 1:7.2+dfsg-7+deb12u6"},
                         "capabilities": ["oob"]})");
}

Transcript& Transcript::negotiate() {
  return greeting().expect("qmp_capabilities", Json(nullptr)).reply();
}

Transcript& Transcript::greeting(Json qmp_member) {
  Json greeting = Json::object();
  greeting["QMP"] = std::move(qmp_member);
  return send_raw(line_of(greeting));
}

Transcript& Transcript::expect(std::string command, std::optional<Json> arguments) {
  steps_.push_back(Step{Step::Kind::kExpect, std::move(command), std::move(arguments), {}, {}, {}});
  return *this;
}

Transcript& Transcript::reply(Json value) {
  steps_.push_back(Step{Step::Kind::kReply, {}, std::move(value), {}, {}, {}});
  return *this;
}

Transcript& Transcript::reply_with_id(Json id, Json value) {
  steps_.push_back(Step{Step::Kind::kReply, {}, std::move(value), std::move(id), {}, {}});
  return *this;
}

Transcript& Transcript::error(std::string error_class, std::string desc) {
  steps_.push_back(Step{Step::Kind::kError, std::move(error_class), {}, {}, std::move(desc), {}});
  return *this;
}

Transcript& Transcript::event(std::string name, Json data) {
  Json message = Json::object();
  message["event"] = std::move(name);
  if (!data.is_null()) message["data"] = std::move(data);
  message["timestamp"] = Json{{"seconds", 1700000000}, {"microseconds", 250000}};
  return send_raw(line_of(message));
}

Transcript& Transcript::send_raw(std::string bytes) {
  steps_.push_back(Step{Step::Kind::kSend, std::move(bytes), {}, {}, {}, {}});
  return *this;
}

Transcript& Transcript::pause(std::chrono::milliseconds duration) {
  steps_.push_back(Step{Step::Kind::kPause, {}, {}, {}, {}, duration});
  return *this;
}

Transcript& Transcript::close() {
  steps_.push_back(Step{Step::Kind::kClose, {}, {}, {}, {}, {}});
  return *this;
}

Transcript& Transcript::answer(std::string command, Json value, std::optional<Json> arguments) {
  return expect(std::move(command), std::move(arguments)).reply(std::move(value));
}

Transcript& Transcript::answer_hmp(std::string command_line, std::string output) {
  Json arguments = Json::object();
  arguments["command-line"] = std::move(command_line);
  return answer("human-monitor-command", Json(std::move(output)), std::move(arguments));
}

FakeQmpPeer::FakeQmpPeer(Transcript script, std::chrono::milliseconds expect_timeout)
    : script_(std::move(script)), expect_timeout_(expect_timeout) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    note(fmt::format("socketpair failed: {}", std::strerror(errno)));
    done_ = true;
    return;
  }
  peer_fd_.reset(ends[0]);
  client_fd_.reset(ends[1]);
  thread_ = std::thread([this] { run(); });
}

FakeQmpPeer::FakeQmpPeer(Listening, UniqueFd listener, std::string path, Transcript script,
                         std::chrono::milliseconds expect_timeout)
    : script_(std::move(script)),
      expect_timeout_(expect_timeout),
      listener_(std::move(listener)),
      socket_path_(std::move(path)) {
  thread_ = std::thread([this] { run(); });
}

std::unique_ptr<FakeQmpPeer> FakeQmpPeer::listen(const std::string& path, Transcript script,
                                                 std::chrono::milliseconds expect_timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return nullptr;
  std::memcpy(address.sun_path, path.data(), path.size());
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::unlink(path.c_str());
  if (!listener ||
      ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener.get(), 4) != 0)
    return nullptr;
  return std::unique_ptr<FakeQmpPeer>(
      new FakeQmpPeer(Listening{}, std::move(listener), path, std::move(script), expect_timeout));
}

FakeQmpPeer::~FakeQmpPeer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

UniqueFd FakeQmpPeer::take_client_fd() { return std::move(client_fd_); }

bool FakeQmpPeer::wait_done(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return done_changed_.wait_for(lock, timeout, [this] { return done_; });
}

std::vector<std::string> FakeQmpPeer::problems() const {
  std::lock_guard lock(mutex_);
  return problems_;
}

std::vector<Json> FakeQmpPeer::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

void FakeQmpPeer::note(std::string problem) {
  std::lock_guard lock(mutex_);
  problems_.push_back(std::move(problem));
}

void FakeQmpPeer::run() {
  bool finished = listener_ ? accept_client() : true;
  std::optional<Json> last_id;
  for (std::size_t i = 0; finished && i < script_.steps_.size() && !stop_; ++i)
    finished = play(script_.steps_[i], i, last_id);
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  done_changed_.notify_all();
  if (finished && peer_fd_) hold_after_script();
  peer_fd_.reset();
}

bool FakeQmpPeer::accept_client() {
  while (!stop_) {
    pollfd readable{listener_.get(), POLLIN, 0};
    if (::poll(&readable, 1, kSliceMs) <= 0) continue;
    peer_fd_.reset(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (peer_fd_) return true;
  }
  return false;
}

bool FakeQmpPeer::play(const Transcript::Step& step, std::size_t index,
                       std::optional<Json>& last_id) {
  using Kind = Transcript::Step::Kind;
  switch (step.kind) {
    case Kind::kSend:
      return send_bytes(step.text);
    case Kind::kPause: {
      auto until = std::chrono::steady_clock::now() + step.duration;
      while (!stop_ && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(kSliceMs), until - std::chrono::steady_clock::now()));
      return !stop_;
    }
    case Kind::kClose:
      peer_fd_.reset();
      return true;
    case Kind::kReply:
    case Kind::kError: {
      Json message = Json::object();
      if (step.kind == Kind::kReply) {
        message["return"] = *step.json;
      } else {
        message["error"] = Json{{"class", step.text}, {"desc", step.error_desc}};
      }
      if (step.explicit_id) message["id"] = *step.explicit_id;
      else if (last_id) message["id"] = *last_id;
      return send_bytes(line_of(message));
    }
    case Kind::kExpect: {
      auto message = receive(expect_timeout_);
      bool matches = false;
      if (message) {
        auto execute = message->find("execute");
        auto arguments = message->find("arguments");
        Json sent_arguments = arguments == message->end() ? Json(nullptr) : *arguments;
        matches = execute != message->end() && *execute == step.text &&
                  (!step.json || *step.json == sent_arguments);
        auto id = message->find("id");
        last_id = id == message->end() ? std::nullopt : std::optional<Json>(*id);
      }
      if (matches) return true;
      note(fmt::format("step {}: expected '{}'{}, got {}", index, step.text,
                       step.json ? " with arguments " + step.json->dump() : "",
                       message ? message->dump() : "nothing"));
      peer_fd_.reset();  // hang up so the client fails now rather than at its timeout
      return false;
    }
  }
  return false;
}

bool FakeQmpPeer::send_bytes(std::string_view bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size() && !stop_ && peer_fd_) {
    ssize_t n = ::send(peer_fd_.get(), bytes.data() + sent, bytes.size() - sent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd writable{peer_fd_.get(), POLLOUT, 0};
      ::poll(&writable, 1, kSliceMs);
    } else {
      return false;  // the client hung up: nothing more to play
    }
  }
  return sent == bytes.size();
}

std::optional<Json> FakeQmpPeer::receive(std::chrono::milliseconds timeout, bool* hung_up) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stop_ && peer_fd_) {
    if (std::size_t newline = inbox_.find('\n'); newline != std::string::npos) {
      std::string line = inbox_.substr(0, newline);
      inbox_.erase(0, newline + 1);
      Json message = Json::parse(line, nullptr, false);
      if (message.is_discarded() || !message.is_object()) {
        note("the client sent something that is not a JSON object: " + line);
        return std::nullopt;
      }
      std::lock_guard lock(mutex_);
      received_.push_back(message);
      return message;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    pollfd readable{peer_fd_.get(), POLLIN, 0};
    if (::poll(&readable, 1, kSliceMs) <= 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(peer_fd_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      inbox_.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (hung_up != nullptr) *hung_up = true;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void FakeQmpPeer::hold_after_script() {
  // Keeps the connection open like an idle QEMU, but a command the script did not foresee is
  // refused by hanging up so that the test fails fast.
  while (!stop_ && peer_fd_) {
    bool hung_up = false;
    auto message = receive(std::chrono::milliseconds(kSliceMs), &hung_up);
    if (hung_up) return;
    if (message) {
      note("the client sent " + message->dump() + " after the script ended");
      return;
    }
  }
}

}  // namespace haywire::qmp::testing
