#include "haywire/guest/writer.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/ram.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;

struct Captured {
  std::vector<WriteRecord> records;
  WriteSink sink() {
    return [this](const WriteRecord& r) { records.push_back(r); };
  }
};

TEST(GuestWriter, BytesLandAndAReaderMappingSeesThem) {
  FakeRamFile file(1 << 20);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  Captured log;
  auto w = GuestWriter::open(file.path(), {}, "test", log.sink());
  ASSERT_TRUE(w.has_value()) << w.error().message();
  ASSERT_TRUE(w->write_value(PhysAddr(0x1000), std::uint64_t{0x1122334455667788}).has_value());
  ASSERT_TRUE(w->write_value(PhysAddr(0x2004), std::uint32_t{0xdeadbeef}).has_value());
  ASSERT_TRUE(w->write_value(PhysAddr(0x3002), std::uint16_t{0xabcd}).has_value());
  ASSERT_TRUE(w->write_value(PhysAddr(0x4001), std::uint8_t{0x5a}).has_value());
  std::uint64_t v8;
  std::memcpy(&v8, ram->file_bytes().data() + 0x1000, 8);
  EXPECT_EQ(v8, 0x1122334455667788u);
  std::uint32_t v4;
  std::memcpy(&v4, ram->file_bytes().data() + 0x2004, 4);
  EXPECT_EQ(v4, 0xdeadbeefu);
  std::uint16_t v2;
  std::memcpy(&v2, ram->file_bytes().data() + 0x3002, 2);
  EXPECT_EQ(v2, 0xabcd);
  EXPECT_EQ(ram->file_bytes()[0x4001], std::byte{0x5a});
  ASSERT_EQ(log.records.size(), 4u);
  EXPECT_EQ(log.records[0].who, "test");
  EXPECT_EQ(log.records[0].addr, PhysAddr(0x1000));
  EXPECT_EQ(log.records[0].length, 8u);
  EXPECT_EQ(log.records[0].pid, ::getpid());
  EXPECT_EQ(log.records[0].uid, ::getuid());
}

TEST(GuestWriter, GoesThroughTheLayout) {
  // Guest-physical 4 GiB is file offset 1 MiB (RAM above the PCI hole).
  FakeRamFile file(2 << 20);
  auto layout = RamLayout::make({RamRegion{PhysAddr(0), 1 << 20, 0}, RamRegion{PhysAddr(4ULL << 30), 1 << 20, 1 << 20}},
                                2 << 20);
  ASSERT_TRUE(layout.has_value());
  auto w = GuestWriter::open(file.path(), *layout, "test", [](const WriteRecord&) {});
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(w->write_value(PhysAddr((4ULL << 30) + 8), std::uint64_t{42}).has_value());
  std::uint64_t v;
  std::memcpy(&v, file.guest().data() + (1 << 20) + 8, 8);
  EXPECT_EQ(v, 42u);
  auto hole = w->write_value(PhysAddr(3ULL << 30), std::uint64_t{1});
  ASSERT_FALSE(hole.has_value());
  EXPECT_TRUE(hole.error().is<InvalidAddress>());
}

TEST(GuestWriter, RejectsMisalignedOversizedAndOutOfRange) {
  FakeRamFile file(1 << 20);
  Captured log;
  auto w = GuestWriter::open(file.path(), {}, "test", log.sink());
  ASSERT_TRUE(w.has_value());
  auto misaligned = w->write_value(PhysAddr(0x1004), std::uint64_t{1});
  ASSERT_FALSE(misaligned.has_value());
  EXPECT_TRUE(misaligned.error().is<InvalidArgument>());
  EXPECT_FALSE(w->write_value(PhysAddr(0x1001), std::uint16_t{1}).has_value());
  std::byte three[3] = {};
  EXPECT_TRUE(w->write(PhysAddr(0x1000), three).error().is<InvalidArgument>());
  auto past = w->write_value(PhysAddr(1 << 20), std::uint32_t{1});
  ASSERT_FALSE(past.has_value());
  EXPECT_TRUE(past.error().is<InvalidAddress>());
  std::vector<std::byte> big(kMaxExtent + 8);
  EXPECT_TRUE(w->write_extent(PhysAddr(0), big).error().is<InvalidArgument>());
  std::vector<std::byte> two_pages(16);
  EXPECT_TRUE(w->write_extent(PhysAddr(0x1ff8), two_pages).error().is<InvalidArgument>());
  EXPECT_TRUE(w->write_extent(PhysAddr(0x1004), std::span(two_pages).first(8)).error().is<InvalidArgument>());
  EXPECT_TRUE(log.records.empty()) << "rejected writes are not made, so not logged";
  // Nothing landed.
  for (std::byte b : file.guest()) ASSERT_EQ(b, std::byte{0});
}

TEST(GuestWriter, ExtentLandsWhole) {
  FakeRamFile file(1 << 20);
  auto w = GuestWriter::open(file.path(), {}, "test", [](const WriteRecord&) {});
  ASSERT_TRUE(w.has_value());
  std::vector<std::uint64_t> words(64);
  for (std::size_t i = 0; i < words.size(); ++i) words[i] = i * 0x0101010101010101ULL;
  ASSERT_TRUE(w->write_extent(PhysAddr(0x5000), std::as_bytes(std::span(words))).has_value());
  EXPECT_EQ(std::memcmp(file.guest().data() + 0x5000, words.data(), words.size() * 8), 0);
}

TEST(GuestWriter, LogFileSinkAppendsOneLinePerWrite) {
  FakeRamFile file(1 << 20);
  std::string log_path = std::filesystem::temp_directory_path() / ("haywire_writes_" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(log_path);
  {
    auto w = GuestWriter::open(file.path(), {}, "haywire pagemap", log_file_sink(log_path));
    ASSERT_TRUE(w.has_value());
    ASSERT_TRUE(w->write_value(PhysAddr(0x3000), std::uint32_t{7}).has_value());
    ASSERT_TRUE(w->write_value(PhysAddr(0x3008), std::uint64_t{7}).has_value());
  }
  std::ifstream in(log_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::filesystem::remove(log_path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("who=haywire pagemap"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("pa=0x3000 len=4"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("pa=0x3008 len=8"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("pid=" + std::to_string(::getpid())), std::string::npos);
}

}  // namespace
}  // namespace haywire::guest
