#include "haywire/glass/render.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "glass/render_internal.h"

namespace haywire::glass {
namespace {

Rgb pixel(const Image& image, std::uint32_t x, std::uint32_t y) {
  const std::uint8_t* p = image.rgba.data() + 4 * (std::size_t{y} * image.width + x);
  EXPECT_EQ(p[3], 255);
  return {p[0], p[1], p[2]};
}

double luma(Rgb c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b; }

TEST(Palette, RisesInLightnessFromDarkToBright) {
  for (Palette palette : {Palette::kInferno, Palette::kViridis}) {
    const auto& colors = palette_colors(palette);
    EXPECT_LT(luma(colors[0]), 80);
    EXPECT_GT(luma(colors[255]), 200);
    for (std::size_t i = 1; i < 256; ++i) {
      // Perceptual maps rise monotonically in lightness; the fits wobble by at most a unit.
      EXPECT_GE(luma(colors[i]), luma(colors[i - 1]) - 1.0) << "entry " << i;
    }
  }
  // Known inferno anchors (matplotlib: #000004 at 0, #bc3754 at 0.5, #fcffa4 at 1), within 8.
  const auto& inferno = palette_colors(Palette::kInferno);
  auto near = [](Rgb a, Rgb b) {
    return std::abs(a.r - b.r) <= 8 && std::abs(a.g - b.g) <= 8 && std::abs(a.b - b.b) <= 8;
  };
  EXPECT_TRUE(near(inferno[0], {0, 0, 4}));
  EXPECT_TRUE(near(inferno[128], {188, 55, 84}));
  EXPECT_TRUE(near(inferno[255], {252, 255, 164}));
}

TEST(RenderHeatmap, MapsEachCellToItsPixel) {
  DensityMap map(2);  // 4 x 4
  map.at(1, 0) = 1.0f;
  map.at(2, 3) = 1e-9f;  // the smallest write is still visible
  map.at(3, 3) = 0.5f;
  map.at(0, 3) = std::numeric_limits<float>::quiet_NaN();
  map.at(0, 2) = -1.0f;
  map.at(1, 2) = 7.0f;
  Image image;
  const RenderOptions options{.palette = Palette::kInferno, .background = {10, 20, 30}};
  render_heatmap(map, image, options);
  ASSERT_EQ(image.width, 4u);
  ASSERT_EQ(image.height, 4u);
  ASSERT_EQ(image.rgba.size(), 64u);
  const auto& colors = palette_colors(Palette::kInferno);
  const Rgb background{10, 20, 30};
  EXPECT_EQ(pixel(image, 0, 0), background);
  EXPECT_EQ(pixel(image, 1, 0), colors[255]);
  EXPECT_EQ(pixel(image, 2, 3), colors[1]);
  EXPECT_EQ(pixel(image, 3, 3), colors[128]);
  EXPECT_EQ(pixel(image, 0, 3), background);
  EXPECT_EQ(pixel(image, 0, 2), background);
  EXPECT_EQ(pixel(image, 1, 2), colors[255]);

  // Re-rendering into the same image reuses it and overwrites every pixel.
  const auto* buffer = image.rgba.data();
  render_heatmap(DensityMap(2), image, options);
  EXPECT_EQ(image.rgba.data(), buffer);
  for (std::uint32_t y = 0; y < 4; ++y) {
    for (std::uint32_t x = 0; x < 4; ++x) EXPECT_EQ(pixel(image, x, y), background);
  }
}

TEST(RenderThreads, EachSlotHasItsOwnHueAndBrightnessFollowsRate) {
  std::set<std::tuple<int, int, int>> hues;
  for (unsigned s = 0; s < 16; ++s) {
    const Rgb c = thread_color(static_cast<std::uint8_t>(s));
    hues.insert({c.r, c.g, c.b});
    EXPECT_GE(std::max({c.r, c.g, c.b}), 250);  // full value
  }
  EXPECT_EQ(hues.size(), 16u);

  ThreadActivity activity{.order = 2, .slot = std::vector<std::uint8_t>(16, kNoThread),
                          .rate = std::vector<float>(16, 0.0f)};
  activity.slot[0] = 3;
  activity.rate[0] = 1.0f;
  activity.slot[1] = 3;
  activity.rate[1] = 0.25f;
  activity.slot[2] = 3;
  activity.rate[2] = 0.0f;         // no writes: background
  activity.rate[3] = 1.0f;         // kNoThread: background
  activity.slot[4] = 5;
  activity.rate[4] = 0.01f;        // faint but visible
  Image image;
  render_threads(activity, image);
  ASSERT_EQ(image.width, 4u);
  const Rgb full = thread_color(3);
  EXPECT_EQ(pixel(image, 0, 0), full);
  const Rgb quarter = pixel(image, 1, 0);
  EXPECT_NEAR(quarter.r, full.r / 2, 2);  // sqrt(0.25) = 0.5
  EXPECT_NEAR(quarter.g, full.g / 2, 2);
  EXPECT_EQ(pixel(image, 2, 0), (Rgb{0, 0, 0}));
  EXPECT_EQ(pixel(image, 3, 0), (Rgb{0, 0, 0}));
  const Rgb faint = pixel(image, 0, 1);
  EXPECT_GT(faint.r + faint.g + faint.b, 20);
}

TEST(Overlays, OutlineTheBorderAndTintTheInside) {
  DensityMap map(3);  // 8 x 8, all zero: background black
  Image image;
  render_heatmap(map, image);
  std::vector<std::uint8_t> avalanche(64, 0);
  for (std::uint32_t y = 1; y <= 3; ++y) {
    for (std::uint32_t x = 1; x <= 3; ++x) avalanche[y * 8 + x] = 1;
  }
  std::vector<std::uint8_t> phase(64, 0);
  phase[6 * 8 + 6] = 1;
  ASSERT_TRUE(draw_overlays(image, {.avalanche = avalanche, .phase_transition = phase}));
  EXPECT_EQ(pixel(image, 1, 1), kAvalancheColor);  // border
  EXPECT_EQ(pixel(image, 3, 2), kAvalancheColor);
  EXPECT_EQ(pixel(image, 2, 2), (Rgb{0, 115, 127}));  // inside: half-way to cyan
  EXPECT_EQ(pixel(image, 6, 6), kPhaseTransitionColor);  // a single cell is all border
  EXPECT_EQ(pixel(image, 5, 5), (Rgb{0, 0, 0}));
  EXPECT_EQ(pixel(image, 0, 0), (Rgb{0, 0, 0}));

  // A mask of the wrong size is refused and draws nothing.
  Image clean;
  render_heatmap(map, clean);
  std::vector<std::uint8_t> wrong(63, 1);
  EXPECT_FALSE(draw_overlays(clean, {.avalanche = wrong}));
  EXPECT_EQ(pixel(clean, 0, 0), (Rgb{0, 0, 0}));
  EXPECT_TRUE(draw_overlays(clean, {}));
}

TEST(RenderPaths, VectorAndScalarLoopsDrawTheSamePixels) {
  if (__builtin_cpu_supports("avx2") == 0) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(11);
  std::vector<float> values(1003);  // not a multiple of 8: the tail goes through the scalar loop
  std::vector<std::uint8_t> slots(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = std::uniform_real_distribution<float>(-0.2f, 1.2f)(rng);
    slots[i] = static_cast<std::uint8_t>(rng());
  }
  values[3] = std::numeric_limits<float>::quiet_NaN();
  values[4] = std::numeric_limits<float>::infinity();
  values[5] = -std::numeric_limits<float>::infinity();
  values[6] = 1e-30f;
  std::vector<std::uint32_t> table(256 * 256);
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<std::uint32_t>(i * 2654435761u);
  std::vector<std::uint8_t> scalar(values.size() * 4);
  std::vector<std::uint8_t> vector(values.size() * 4);
  detail::heat_pixels_scalar(values.data(), values.size(), table.data(), scalar.data());
  detail::heat_pixels_avx2(values.data(), values.size(), table.data(), vector.data());
  EXPECT_EQ(scalar, vector);
  detail::thread_pixels_scalar(slots.data(), values.data(), values.size(), table.data(), scalar.data());
  detail::thread_pixels_avx2(slots.data(), values.data(), values.size(), table.data(), vector.data());
  EXPECT_EQ(scalar, vector);
}

}  // namespace
}  // namespace haywire::glass
