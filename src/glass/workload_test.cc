// The test workload itself: its log and checksum are what glass's reports are judged by.
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace {

std::string run(const std::string& args) {
  std::string out;
  std::FILE* p = ::popen((std::string(HAYWIRE_GLASS_WORKLOAD) + " " + args + " </dev/null").c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  return out;
}

TEST(Workload, ChecksumIsDeterministic) {
  std::string a = run("checksum --size 1M --seed 7");
  std::string b = run("checksum --size 1M --seed 7");
  std::string c = run("checksum --size 1M --seed 8");
  std::smatch m;
  std::regex re("checksum ([0-9a-f]{16})");
  ASSERT_TRUE(std::regex_search(a, m, re)) << a;
  std::string sum = m[1];
  ASSERT_TRUE(std::regex_search(b, m, re));
  EXPECT_EQ(sum, m[1]);
  ASSERT_TRUE(std::regex_search(c, m, re));
  EXPECT_NE(sum, m[1]);
}

TEST(Workload, SweepLogsEveryPageInsideItsRegion) {
  std::string log = fmt::format("/tmp/glass-workload-test-{}.log", ::getpid());
  std::string out = run("sweep --size 256K --duration-ms 30 --interval-ms 10 --log " + log);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("pid=\\d+ region=0x([0-9a-f]+)-0x([0-9a-f]+)"))) << out;
  std::uint64_t start = std::stoull(m[1], nullptr, 16);
  std::uint64_t end = std::stoull(m[2], nullptr, 16);
  EXPECT_EQ(end - start, 256u * 1024);
  std::ifstream in(log);
  std::string line;
  std::uint64_t pages = 0;
  int intervals = 0;
  std::regex range("0x([0-9a-f]+)-0x([0-9a-f]+)");
  while (std::getline(in, line)) {
    if (line.starts_with("interval ")) {
      ++intervals;
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, range)) << line;
    std::uint64_t a = std::stoull(m[1], nullptr, 16);
    std::uint64_t b = std::stoull(m[2], nullptr, 16);
    EXPECT_TRUE(start <= a && a < b && b <= end) << line;
    pages += (b - a) / 4096;
  }
  ::unlink(log.c_str());
  EXPECT_GE(intervals, 1);
  EXPECT_GE(pages, 64u);  // at full speed a 30 ms sweep covers the 64 pages many times over
}

}  // namespace
