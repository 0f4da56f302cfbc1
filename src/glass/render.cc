// Rendering: one table lookup and one 4-byte store per cell (AVX2: 8 cells per gather), so an
// order-12 map (16 M cells, 64 MiB of RGBA) costs little more than writing 64 MiB.
#include "haywire/glass/render.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "glass/render_internal.h"

namespace haywire::glass {
namespace {

constexpr std::uint32_t pack(Rgb c) {
  return std::uint32_t{c.r} | (std::uint32_t{c.g} << 8) | (std::uint32_t{c.b} << 16) | (0xFFu << 24);
}

void resize(Image& image, std::uint32_t side) {
  image.width = side;
  image.height = side;
  image.rgba.resize(std::size_t{side} * side * 4);
}

bool have_avx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2") != 0;
  return avx2;
}

}  // namespace

void render_heatmap(const DensityMap& density, Image& out, const RenderOptions& options) {
  resize(out, density.side());
  const auto& palette = palette_colors(options.palette);
  std::array<std::uint32_t, 256> lut{};
  lut[0] = pack(options.background);
  for (std::size_t i = 1; i < 256; ++i) lut[i] = pack(palette[i]);
  const std::size_t n = std::min(density.cells.size(), out.rgba.size() / 4);
  if (have_avx2()) {
    detail::heat_pixels_avx2(density.cells.data(), n, lut.data(), out.rgba.data());
  } else {
    detail::heat_pixels_scalar(density.cells.data(), n, lut.data(), out.rgba.data());
  }
}

void render_threads(const ThreadActivity& activity, Image& out, const RenderOptions& options) {
  const std::uint32_t side = std::uint32_t{1} << activity.order;
  resize(out, side);
  // Colour of every (slot, rate level) pair: 256 KiB, built per call (~0.1 ms) so the pixel
  // loop is a single lookup. Level 0 and slot kNoThread are the background.
  auto table = std::make_unique<std::array<std::uint32_t, 256 * 256>>();
  const std::uint32_t background = pack(options.background);
  for (unsigned s = 0; s < 256; ++s) {
    const Rgb hue = thread_color(static_cast<std::uint8_t>(s));
    (*table)[s << 8] = background;
    for (unsigned l = 1; l < 256; ++l) {
      // Brightness sqrt(rate), rate = (l - 1) / 254 (level_index's inverse), never below 1/16.
      const double bright = std::max(1.0 / 16, std::sqrt((l - 1) / 254.0));
      const Rgb c{static_cast<std::uint8_t>(std::lround(hue.r * bright)),
                  static_cast<std::uint8_t>(std::lround(hue.g * bright)),
                  static_cast<std::uint8_t>(std::lround(hue.b * bright))};
      (*table)[(s << 8) | l] = s == kNoThread ? background : pack(c);
    }
  }
  const std::size_t n = std::min({activity.slot.size(), activity.rate.size(), out.rgba.size() / 4});
  if (have_avx2()) {
    detail::thread_pixels_avx2(activity.slot.data(), activity.rate.data(), n, table->data(), out.rgba.data());
  } else {
    detail::thread_pixels_scalar(activity.slot.data(), activity.rate.data(), n, table->data(), out.rgba.data());
  }
  for (std::size_t i = n; i < out.rgba.size() / 4; ++i) {  // activity shorter than the grid
    std::memcpy(out.rgba.data() + 4 * i, &background, 4);
  }
}

namespace {

// Outline on the mask's border cells (a 4-neighbour outside the mask or the image), a 50% tint
// inside, so a large marked area stays readable and a single cell is still visible.
void draw_mask(Image& image, std::span<const std::uint8_t> mask, Rgb color) {
  const std::uint32_t w = image.width;
  const std::uint32_t h = image.height;
  auto marked = [&](std::uint32_t x, std::uint32_t y) { return mask[std::size_t{y} * w + x] != 0; };
  for (std::uint32_t y = 0; y < h; ++y) {
    const std::uint8_t* row = mask.data() + std::size_t{y} * w;
    for (std::uint32_t x = 0; x < w; ++x) {
      // Skip unmarked stretches 8 cells at a time: overlays are usually sparse.
      std::uint64_t eight = 0;
      if (x + 8 <= w && (std::memcpy(&eight, row + x, 8), eight == 0)) {
        x += 7;
        continue;
      }
      if (row[x] == 0) continue;
      const bool border = x == 0 || y == 0 || x + 1 == w || y + 1 == h || !marked(x - 1, y) ||
                          !marked(x + 1, y) || !marked(x, y - 1) || !marked(x, y + 1);
      std::uint8_t* p = image.rgba.data() + 4 * (std::size_t{y} * w + x);
      if (border) {
        p[0] = color.r;
        p[1] = color.g;
        p[2] = color.b;
      } else {
        p[0] = static_cast<std::uint8_t>((p[0] + color.r) / 2);
        p[1] = static_cast<std::uint8_t>((p[1] + color.g) / 2);
        p[2] = static_cast<std::uint8_t>((p[2] + color.b) / 2);
      }
      p[3] = 0xFF;
    }
  }
}

}  // namespace

bool draw_overlays(Image& image, const Overlays& overlays) {
  const std::size_t cells = std::size_t{image.width} * image.height;
  if (image.rgba.size() != cells * 4) return false;
  bool ok = true;
  for (const auto& [mask, color] : {std::pair{overlays.avalanche, kAvalancheColor},
                                    std::pair{overlays.phase_transition, kPhaseTransitionColor}}) {
    if (mask.empty()) continue;
    if (mask.size() != cells) {
      ok = false;
      continue;
    }
    draw_mask(image, mask, color);
  }
  return ok;
}

}  // namespace haywire::glass
