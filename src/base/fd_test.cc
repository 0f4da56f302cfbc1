#include "haywire/base/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

namespace haywire {
namespace {

TEST(Fd, OpenMapsErrnoToKinds) {
  auto missing = open_file("/nonexistent/haywire", O_RDONLY);
  ASSERT_FALSE(missing.has_value());
  EXPECT_TRUE(missing.error().is<FileNotFound>());
}

TEST(Fd, UniqueFdClosesOnceAndMoves) {
  int raw = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(raw, 0);
  UniqueFd a(raw);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move): the point of the test
  EXPECT_EQ(b.get(), raw);
  b.reset();
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

TEST(Fd, AtomicWriteThenRead) {
  auto dir = std::filesystem::temp_directory_path() / ("haywire_fd_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "f.json").string();
  ASSERT_TRUE(write_text_file_atomic(path, "hello").has_value());
  EXPECT_EQ(read_text_file(path).value(), "hello");
  EXPECT_FALSE(read_text_file(path, 3).has_value());  // bounded
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST(Fd, MappingOfZeroBytesFails) {
  auto fd = open_file("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd.has_value());
  auto m = ReadOnlyMapping::map(*fd, 0, "/dev/null");
  ASSERT_FALSE(m.has_value());
  EXPECT_TRUE(m.error().is<MmapFailed>());
}

}  // namespace
}  // namespace haywire
