#include "haywire/qmp/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "qmp/testing/fake_qmp_peer.h"

namespace haywire::qmp {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using qmp::testing::FakeQmpPeer;
using qmp::testing::Transcript;
using Clock = std::chrono::steady_clock;

const Json kRunning = Json::parse(R"({"status": "running", "singlestep": false, "running": true})");

// Adopts the client end of `peer` as `client`, or fails the test.
#define ADOPT(client, peer)                                         \
  auto client##_adopted = Client::adopt((peer).take_client_fd(), 5s); \
  ASSERT_TRUE(client##_adopted) << client##_adopted.error().message(); \
  Client& client = *client##_adopted

// Records every event a client delivers.
struct EventLog {
  std::vector<Event> events;
  Client::Subscriber subscriber() {
    return [this](const Event& event) { events.push_back(event); };
  }
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const Event& e : events) out.push_back(e.name);
    return out;
  }
};

template <class Kind>
void expect_error(const Error& error, std::string_view fragment = {}) {
  EXPECT_TRUE(error.is<Kind>()) << error.name() << ": " << error.message();
  if (!fragment.empty()) {
    EXPECT_THAT(error.message(), HasSubstr(std::string(fragment)));
  }
}

TEST(Client, NegotiatesCapabilitiesWithoutAnId) {
  FakeQmpPeer peer(Transcript().negotiate());
  ADOPT(client, peer);
  EXPECT_TRUE(client.connected());
  EXPECT_GE(client.fd(), 0);
  EXPECT_EQ(client.greeting()["QMP"]["version"]["qemu"]["major"], 7);
  ASSERT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());
  ASSERT_EQ(peer.received().size(), 1u);
  EXPECT_EQ(peer.received()[0], Json::parse(R"({"execute": "qmp_capabilities"})"));
}

TEST(Client, ExecuteSendsMonotonicIdsAndReturnsTheReturnMember) {
  Json arguments = {{"path", "/machine"}, {"property", "type"}};
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("query-status", kRunning, Json(nullptr))
                       .answer("qom-get", "pc-q35-7.2-machine", arguments));
  ADOPT(client, peer);
  auto status = client.execute("query-status");
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, kRunning);
  auto type = client.execute("qom-get", arguments);
  ASSERT_TRUE(type) << type.error().message();
  EXPECT_EQ(*type, "pc-q35-7.2-machine");
  ASSERT_TRUE(peer.wait_done());
  EXPECT_THAT(peer.problems(), IsEmpty());
  auto sent = peer.received();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[1]["id"], 1);
  EXPECT_EQ(sent[2]["id"], 2);
}

TEST(Client, RepliesWithOtherIdsAreDiscarded) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("query-status")
                       .reply_with_id(999, Json{{"stale", true}})
                       .reply_with_id("1", Json{{"stale", true}})
                       .reply_with_id(Json::array({1}), Json{{"stale", true}})
                       .reply_with_id(-1, Json{{"stale", true}})
                       .reply(kRunning));
  ADOPT(client, peer);
  auto status = client.execute("query-status");
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, kRunning);
}

TEST(Client, IdlessErrorIsTheAnswerToThePendingCommand) {
  // QEMU cannot echo the id of a request it failed to parse.
  FakeQmpPeer peer(Transcript().negotiate().expect("bad").send_raw(
      R"({"error": {"class": "GenericError", "desc": "JSON parse error"}})"
      "\r\n"));
  ADOPT(client, peer);
  auto reply = client.execute("bad");
  ASSERT_FALSE(reply);
  expect_error<QmpCommandFailed>(reply.error(), "JSON parse error");
}

TEST(Client, LateReplyAfterATimeoutIsDiscarded) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("slow")
                       .pause(300ms)
                       .reply(Json{{"late", true}})
                       .answer("fast", Json{{"fast", true}}));
  ADOPT(client, peer);
  auto slow = client.execute("slow", nullptr, 100ms);
  ASSERT_FALSE(slow);
  expect_error<Timeout>(slow.error(), "slow");
  EXPECT_TRUE(client.connected());
  auto fast = client.execute("fast");
  ASSERT_TRUE(fast) << fast.error().message();
  EXPECT_EQ(*fast, (Json{{"fast", true}}));
}

TEST(Client, ErrorReplyBecomesQmpCommandFailed) {
  FakeQmpPeer peer(Transcript().negotiate().expect("cont").error(
      "GenericError", "Resetting the Virtual Machine is required"));
  ADOPT(client, peer);
  auto reply = client.execute("cont");
  ASSERT_FALSE(reply);
  const auto* failed = reply.error().as<QmpCommandFailed>();
  ASSERT_NE(failed, nullptr) << reply.error().message();
  EXPECT_EQ(failed->command, "cont");
  EXPECT_EQ(failed->error_class, "GenericError");
  EXPECT_EQ(failed->desc, "Resetting the Virtual Machine is required");
  EXPECT_TRUE(client.connected());
}

TEST(Client, EventsArriveDuringExecuteInOrder) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("stop")
                       .event("STOP")
                       .event("RESUME", Json{{"reason", "x"}})
                       .reply());
  ADOPT(client, peer);
  EventLog log;
  client.subscribe(log.subscriber());
  ASSERT_TRUE(client.execute("stop"));
  EXPECT_EQ(log.names(), (std::vector<std::string>{"STOP", "RESUME"}));
  EXPECT_TRUE(log.events[0].data.is_null());
  EXPECT_EQ(log.events[1].data, (Json{{"reason", "x"}}));
  EXPECT_DOUBLE_EQ(log.events[1].timestamp, 1700000000.25);
}

TEST(Client, EventsBufferedBehindAReplyAreDeliveredBeforeExecuteReturns) {
  // An event loop polling fd() would never wake up for bytes already read from the socket.
  FakeQmpPeer peer(Transcript().negotiate().expect("cont").send_raw(
      "{\"return\": {}, \"id\": 1}\r\n{\"event\": \"RESUME\", \"timestamp\": "
      "{\"seconds\": 1, \"microseconds\": 0}}\r\n"));
  ADOPT(client, peer);
  EventLog log;
  client.subscribe(log.subscriber());
  ASSERT_TRUE(client.execute("cont"));
  EXPECT_EQ(log.names(), (std::vector<std::string>{"RESUME"}));
}

TEST(Client, PumpDeliversEventsAndReturnsTheirCount) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .pause(50ms)
                       .event("SHUTDOWN", Json{{"guest", true}, {"reason", "guest-shutdown"}})
                       .event("POWERDOWN"));
  ADOPT(client, peer);
  EventLog log;
  EventLog unsubscribed;
  client.subscribe(log.subscriber());
  client.unsubscribe(client.subscribe(unsubscribed.subscriber()));

  auto none = client.pump(0ms);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);

  int delivered = 0;
  auto deadline = Clock::now() + 5s;
  while (delivered < 2 && Clock::now() < deadline) {
    auto got = client.pump(1s);
    ASSERT_TRUE(got) << got.error().message();
    delivered += *got;
  }
  EXPECT_EQ(log.names(), (std::vector<std::string>{"SHUTDOWN", "POWERDOWN"}));
  EXPECT_EQ(log.events[0].data["reason"], "guest-shutdown");
  EXPECT_THAT(unsubscribed.events, IsEmpty());
}

TEST(Client, PumpWaitsNoLongerThanItsTimeout) {
  FakeQmpPeer peer(Transcript().negotiate());
  ADOPT(client, peer);
  auto start = Clock::now();
  auto got = client.pump(100ms);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 0);
  EXPECT_GE(Clock::now() - start, 90ms);
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(Client, SubscriberMayCallBackIntoTheClient) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("stop")
                       .event("STOP")
                       .reply()
                       .answer("query-status", Json{{"status", "paused"}, {"running", false}}));
  ADOPT(client, peer);
  std::optional<Result<Json>> inner;
  client.subscribe([&](const Event& event) {
    if (event.name == "STOP") inner = client.execute("query-status");
  });
  ASSERT_TRUE(client.execute("stop"));
  ASSERT_TRUE(inner.has_value());
  ASSERT_TRUE(*inner) << inner->error().message();
  EXPECT_EQ((**inner)["status"], "paused");
}

TEST(Client, HmpSendsCommandLineAndCpuIndex) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .answer("human-monitor-command", "RAX=0000000000000000\r\n",
                               Json{{"command-line", "info registers"}, {"cpu-index", 1}})
                       .answer_hmp("info mtree -f", "FlatView #0\r\n")
                       .answer("human-monitor-command", Json{{"not", "a string"}}));
  ADOPT(client, peer);
  auto registers = client.hmp("info registers", 1);
  ASSERT_TRUE(registers) << registers.error().message();
  EXPECT_EQ(*registers, "RAX=0000000000000000\r\n");
  auto mtree = client.hmp("info mtree -f");
  ASSERT_TRUE(mtree) << mtree.error().message();
  EXPECT_EQ(*mtree, "FlatView #0\r\n");
  auto odd = client.hmp("info status");
  ASSERT_FALSE(odd);
  expect_error<ParseError>(odd.error());
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(Client, MessagesSplitAcrossReadsAndPlainNewlinesWork) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("query-status")
                       .send_raw("\n  \r\n{\"return\": {\"status\": \"run")
                       .pause(30ms)
                       .send_raw("ning\", \"running\": true}, \"id\": 1}\n"));
  ADOPT(client, peer);
  auto status = client.execute("query-status");
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ((*status)["status"], "running");
}

TEST(Client, TimeoutLeavesTheSessionOpen) {
  FakeQmpPeer peer(Transcript().negotiate().expect("query-status"));
  ADOPT(client, peer);
  auto start = Clock::now();
  auto reply = client.execute("query-status", nullptr, 100ms);
  ASSERT_FALSE(reply);
  expect_error<Timeout>(reply.error(), "query-status");
  EXPECT_GE(Clock::now() - start, 90ms);
  EXPECT_TRUE(client.connected());
}

TEST(Client, PeerClosingMidCommandIsQmpDisconnectedWithoutWaiting) {
  FakeQmpPeer peer(Transcript().negotiate().expect("query-status").close());
  ADOPT(client, peer);
  auto start = Clock::now();
  auto reply = client.execute("query-status", nullptr, 10s);
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error(), "closed");
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(client.connected());
  EXPECT_GE(client.fd(), 0);  // kept (shut down) so pollers never see a reused number

  start = Clock::now();
  auto again = client.execute("query-status", nullptr, 10s);
  ASSERT_FALSE(again);
  expect_error<QmpDisconnected>(again.error(), "closed earlier");
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_FALSE(client.pump(0ms));
}

TEST(Client, SendingToAPeerThatIsGoneRaisesNoSigpipe) {
  FakeQmpPeer peer(Transcript().negotiate().close());
  ADOPT(client, peer);
  ASSERT_TRUE(peer.wait_done());
  for (int i = 0; i < 3; ++i) {
    auto reply = client.execute("query-status", nullptr, 1s);
    ASSERT_FALSE(reply);
    expect_error<QmpDisconnected>(reply.error());
  }
  EXPECT_FALSE(client.connected());
}

TEST(Client, OversizedMessageWithoutNewlineClosesTheSession) {
  FakeQmpPeer peer(Transcript()
                       .negotiate()
                       .expect("query-status")
                       .send_raw(std::string(kMaxMessageBytes + 4096, 'x')));
  ADOPT(client, peer);
  auto reply = client.execute("query-status");
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error(), "without ending the message");
  EXPECT_FALSE(client.connected());
}

TEST(Client, OversizedReplyClosesTheSession) {
  std::string huge = "{\"return\": \"" + std::string(kMaxMessageBytes, 'y') + "\", \"id\": 1}\r\n";
  FakeQmpPeer peer(Transcript().negotiate().expect("query-status").send_raw(huge));
  ADOPT(client, peer);
  auto reply = client.execute("query-status");
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error());
  EXPECT_FALSE(client.connected());
}

TEST(Client, MalformedJsonClosesTheSession) {
  FakeQmpPeer peer(Transcript().negotiate().expect("query-status").send_raw("{\"return\": \r\n"));
  ADOPT(client, peer);
  auto reply = client.execute("query-status");
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error(), "malformed JSON");
  EXPECT_FALSE(client.connected());
}

TEST(Client, JsonThatIsNotAnObjectClosesTheSession) {
  for (const char* line : {"[1, 2, 3]\r\n", "\"text\"\r\n", "42\r\n", "null\r\n"}) {
    FakeQmpPeer peer(Transcript().negotiate().expect("query-status").send_raw(line));
    ADOPT(client, peer);
    auto reply = client.execute("query-status");
    ASSERT_FALSE(reply) << line;
    expect_error<QmpDisconnected>(reply.error(), "not an object");
    EXPECT_FALSE(client.connected());
  }
}

TEST(Client, AbsurdNestingClosesTheSession) {
  std::string deep = "{\"return\": " + std::string(100000, '[') + std::string(100000, ']') +
                     ", \"id\": 1}\r\n";
  FakeQmpPeer peer(Transcript().negotiate().expect("query-status").send_raw(deep));
  ADOPT(client, peer);
  auto reply = client.execute("query-status");
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error(), "nested");
}

TEST(Client, GreetingTimeoutSaysAnotherClientMayHoldTheSocket) {
  FakeQmpPeer peer(Transcript{});
  auto start = Clock::now();
  auto client = Client::adopt(peer.take_client_fd(), 100ms);
  ASSERT_FALSE(client);
  expect_error<Timeout>(client.error(), "another client may hold the socket");
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(Client, SomethingOtherThanAGreetingIsRefused) {
  FakeQmpPeer peer(Transcript().send_raw("{\"return\": {}}\r\n"));
  auto client = Client::adopt(peer.take_client_fd(), 1s);
  ASSERT_FALSE(client);
  expect_error<QmpDisconnected>(client.error(), "greeting");
}

TEST(Client, CapabilitiesRefusalIsReported) {
  FakeQmpPeer peer(Transcript().greeting().expect("qmp_capabilities").error(
      "CommandNotFound", "Capabilities negotiation is already complete"));
  auto client = Client::adopt(peer.take_client_fd(), 1s);
  ASSERT_FALSE(client);
  expect_error<QmpCommandFailed>(client.error(), "negotiating QMP capabilities");
}

class UnixSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("haywire_qmp_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  [[nodiscard]] std::string path(const char* name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(UnixSocket, ConnectsAndExecutes) {
  auto peer = FakeQmpPeer::listen(path("qmp.sock"), Transcript().negotiate().answer("query-status", kRunning));
  ASSERT_NE(peer, nullptr);
  auto client = Client::connect(path("qmp.sock"), 2s);
  ASSERT_TRUE(client) << client.error().message();
  auto status = client->execute("query-status");
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(*status, kRunning);
}

TEST_F(UnixSocket, SecondClientTimesOutWithTheOneClientHint) {
  // QEMU 7.2 accepts a second connection but greets it only after the first one leaves.
  auto peer = FakeQmpPeer::listen(path("qmp.sock"), Transcript().negotiate());
  ASSERT_NE(peer, nullptr);
  auto first = Client::connect(path("qmp.sock"), 2s);
  ASSERT_TRUE(first) << first.error().message();
  auto second = Client::connect(path("qmp.sock"), 150ms);
  ASSERT_FALSE(second);
  expect_error<Timeout>(second.error(), "another client may hold the socket");
  EXPECT_THAT(second.error().message(), HasSubstr(path("qmp.sock")));
}

TEST_F(UnixSocket, MissingSocketIsFileNotFound) {
  auto client = Client::connect(path("absent.sock"), 100ms);
  ASSERT_FALSE(client);
  expect_error<FileNotFound>(client.error(), "absent.sock");
}

TEST_F(UnixSocket, TooLongPathIsInvalidArgument) {
  auto client = Client::connect("/" + std::string(200, 'p'), 100ms);
  ASSERT_FALSE(client);
  expect_error<InvalidArgument>(client.error());
}

TEST(Client, SeveralThreadsShareOneSession) {
  constexpr int kPerThread = 20;
  Transcript script;
  script.negotiate();
  for (int i = 0; i < 2 * kPerThread; ++i) script.answer("query-status", kRunning);
  FakeQmpPeer peer(std::move(script));
  ADOPT(client, peer);
  std::atomic<int> ok{0};
  auto work = [&] {
    for (int i = 0; i < kPerThread; ++i)
      if (auto status = client.execute("query-status"); status && *status == kRunning) ++ok;
  };
  std::thread a(work);
  std::thread b(work);
  a.join();
  b.join();
  EXPECT_EQ(ok.load(), 2 * kPerThread);
  EXPECT_THAT(peer.problems(), IsEmpty());
}

TEST(Client, ArgumentsMustBeAnObject) {
  FakeQmpPeer peer(Transcript().negotiate());
  ADOPT(client, peer);
  auto reply = client.execute("qom-get", Json::array({1, 2}));
  ASSERT_FALSE(reply);
  expect_error<InvalidArgument>(reply.error());
  EXPECT_TRUE(client.connected());
}

TEST(Client, InvalidUtf8InAnHmpLineDoesNotThrow) {
  FakeQmpPeer peer(Transcript().negotiate().expect("human-monitor-command").reply("ok"));
  ADOPT(client, peer);
  auto reply = client.hmp("echo \xff\xfe");
  ASSERT_TRUE(reply) << reply.error().message();
  EXPECT_EQ(*reply, "ok");
}

TEST(Client, MovedFromClientFailsFast) {
  FakeQmpPeer peer(Transcript().negotiate());
  ADOPT(client, peer);
  Client moved = std::move(client);
  EXPECT_TRUE(moved.connected());
  EXPECT_FALSE(client.connected());  // NOLINT(bugprone-use-after-move): that is the test
  EXPECT_EQ(client.fd(), -1);        // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(client.greeting().is_null());  // NOLINT(bugprone-use-after-move)
  auto reply = client.execute("query-status");  // NOLINT(bugprone-use-after-move)
  ASSERT_FALSE(reply);
  expect_error<QmpDisconnected>(reply.error());
}

}  // namespace
}  // namespace haywire::qmp
