#include "haywire/glass/png.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace haywire::glass {
namespace {

namespace fs = std::filesystem;

class PngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "haywire-png-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::size_t files_in_dir() const {
    return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()));
  }
  fs::path dir_;
};

Image random_image(std::uint32_t w, std::uint32_t h, unsigned seed) {
  Image image{.width = w, .height = h, .rgba = std::vector<std::uint8_t>(std::size_t{w} * h * 4)};
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < image.rgba.size(); ++i) {
    image.rgba[i] = i % 4 == 3 ? 255 : static_cast<std::uint8_t>(rng());
  }
  return image;
}

TEST_F(PngTest, WritesPixelsThatReadBackUnchanged) {
  const std::string path = (dir_ / "map.png").string();
  const Image image = random_image(37, 19, 1);
  ASSERT_TRUE(write_png(path, image).has_value());
  auto back = read_png(path);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->width, 37u);
  EXPECT_EQ(back->height, 19u);
  EXPECT_EQ(back->rgba, image.rgba);
  EXPECT_EQ(files_in_dir(), 1u);  // no temporary left

  // Rewriting replaces the file (a viewer holding the old one keeps a complete image).
  const Image next = random_image(8, 8, 2);
  ASSERT_TRUE(write_png(path, next).has_value());
  back = read_png(path);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->rgba, next.rgba);
  EXPECT_EQ(files_in_dir(), 1u);

  // Every compression level writes the same pixels.
  ASSERT_TRUE(write_png(path, image, {.compression_level = 9}).has_value());
  EXPECT_EQ(read_png(path)->rgba, image.rgba);
}

TEST_F(PngTest, UnwritablePathsAreErrorsAndLeaveNothingBehind) {
  const Image image = random_image(4, 4, 3);
  auto missing = write_png((dir_ / "no-such-dir" / "map.png").string(), image);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("no-such-dir"), std::string::npos) << missing.error().message();

  // The target is a directory: the rename fails, the temporary is removed.
  fs::create_directory(dir_ / "taken");
  auto taken = write_png((dir_ / "taken").string(), image);
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(files_in_dir(), 1u);

  if (geteuid() != 0) {  // root ignores directory permissions
    fs::create_directory(dir_ / "locked");
    chmod((dir_ / "locked").c_str(), 0500);
    auto denied = write_png((dir_ / "locked" / "map.png").string(), image);
    ASSERT_FALSE(denied.has_value());
    EXPECT_TRUE(denied.error().is<PermissionDenied>()) << denied.error().message();
    chmod((dir_ / "locked").c_str(), 0700);
  }

  Image bad = image;
  bad.rgba.pop_back();
  auto invalid = write_png((dir_ / "bad.png").string(), bad);
  ASSERT_FALSE(invalid.has_value());
  EXPECT_TRUE(invalid.error().is<InvalidArgument>());
}

TEST_F(PngTest, ReadingGarbageOrNothingIsAnError) {
  EXPECT_TRUE(read_png((dir_ / "absent.png").string()).error().is<FileNotFound>());
  const std::string junk = (dir_ / "junk.png").string();
  {
    std::ofstream out(junk, std::ios::binary);
    out << "\x89PNG\r\n\x1a\nnot really";
    ASSERT_TRUE(out.good());
  }
  auto r = read_png(junk);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().is<ParseError>()) << r.error().message();
}

}  // namespace
}  // namespace haywire::glass
