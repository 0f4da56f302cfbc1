// Rendering a Hilbert grid to an RGBA8 image, one pixel per cell (side x side).
//
// Two modes, as the spec's visualisation lists them:
//  - heat map: density 0..1 through a perceptual colour map (256-entry LUT); exactly 0 (no
//    writes, or no memory) is the background colour, any positive density is at least entry 1.
//  - thread kinetic energy: per cell the dominant thread (a slot 0..kMaxThreadSlots-1) and its
//    write rate 0..1; each slot has its own hue (golden-angle spacing, so neighbouring slots
//    differ most), brightness by rate.
// Overlays mark the cells of a "memory avalanche" and a "phase transition" (masks from the
// detectors) over either mode: an opaque outline on the mask's border cells and a tint inside.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "haywire/glass/density.h"

namespace haywire::glass {

// Row-major RGBA8 (4 bytes per pixel, R first), alpha always 255.
struct Image {
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::vector<std::uint8_t> rgba;  // width * height * 4
};

struct Rgb {
  std::uint8_t r = 0;
  std::uint8_t g = 0;
  std::uint8_t b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

enum class Palette { kInferno, kViridis };

// The palette as 256 entries (entry i is the colour at t = i / 255), computed once from
// polynomial fits of matplotlib's maps (within a few units of 255 of the published tables).
// A density v > 0 draws with entry 1 + round(min(v, 1) * 254): entry 0 (near black) is never
// used for data, so the smallest write still differs from the background.
const std::array<Rgb, 256>& palette_colors(Palette palette);

struct RenderOptions {
  Palette palette = Palette::kInferno;
  Rgb background{0, 0, 0};
};

// Density -> colour. `out` is resized to side x side if needed (reused otherwise, so a caller
// that renders every interval allocates once). NaN and values <= 0 draw as background, values
// >= 1 as the top of the palette.
void render_heatmap(const DensityMap& density, Image& out, const RenderOptions& options = {});

inline constexpr unsigned kMaxThreadSlots = 255;
inline constexpr std::uint8_t kNoThread = 0xFF;

// Per cell (row-major, 4^order entries each): the thread slot that wrote the cell most in the
// interval (kNoThread if none) and its rate normalised to 0..1 (the caller picks the scale,
// e.g. the busiest thread's rate).
struct ThreadActivity {
  unsigned order = 0;
  std::vector<std::uint8_t> slot;
  std::vector<float> rate;
};

// The hue of a thread slot at full brightness.
Rgb thread_color(std::uint8_t slot);

// Thread slot -> hue, rate -> brightness (a zero rate or kNoThread is background). Brightness
// rises with sqrt(rate) so that a thread writing 1% of the busiest rate is still visible.
void render_threads(const ThreadActivity& activity, Image& out, const RenderOptions& options = {});

// Per-cell masks (row-major, side x side entries, nonzero = marked); an empty span draws nothing.
struct Overlays {
  std::span<const std::uint8_t> avalanche;         // outlined and tinted cyan
  std::span<const std::uint8_t> phase_transition;  // outlined and tinted green
};
inline constexpr Rgb kAvalancheColor{0, 230, 255};
inline constexpr Rgb kPhaseTransitionColor{60, 255, 60};

// Draws the overlays onto an image rendered by one of the functions above. Masks whose size is
// not width * height are ignored (returns false).
bool draw_overlays(Image& image, const Overlays& overlays);

}  // namespace haywire::glass
