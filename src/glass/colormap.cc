// Palettes and thread hues.
//
// Inferno and viridis come from 6th-degree polynomial fits of matplotlib's published tables
// (Matt Zucconi's fits, CC0), evaluated once into 256-entry tables; they stay within a few
// units of 255 of the originals, which keeps them perceptually uniform and monotonic in
// lightness (checked by the tests).
#include <algorithm>
#include <array>
#include <cmath>

#include "haywire/glass/render.h"

namespace haywire::glass {
namespace {

using Poly = std::array<std::array<double, 3>, 7>;  // coefficient k of t^k, per channel

constexpr Poly kInferno = {{
    {0.0002189403691192265, 0.001651004631001012, -0.01948089843709184},
    {0.1065134194856116, 0.5639564367884091, 3.932712388889277},
    {11.60249308247187, -3.972853965665698, -15.9423941062914},
    {-41.70399613139459, 17.43639888205313, 44.35414519872813},
    {77.162935699427, -33.40235894210092, -81.80730925738993},
    {-71.31942824499214, 32.62606426397723, 73.20951985803202},
    {25.13112622477341, -12.24266895238567, -23.07032500287172},
}};

constexpr Poly kViridis = {{
    {0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
    {0.1050930431085774, 1.404613529898575, 1.384590162594685},
    {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
    {-4.634230498983486, -5.799100973351585, -19.33244095627987},
    {6.228269936347081, 14.17993336680509, 56.69055260068105},
    {4.776384997670288, -13.74514537774601, -65.35303263337234},
    {-5.435455855934631, 4.645852612178535, 26.3124352495832},
}};

std::uint8_t to_byte(double v) {
  return static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
}

std::array<Rgb, 256> evaluate(const Poly& poly) {
  std::array<Rgb, 256> table{};
  for (int i = 0; i < 256; ++i) {
    const double t = i / 255.0;
    std::array<double, 3> c{};
    for (int ch = 0; ch < 3; ++ch) {
      double v = 0;
      for (int k = 6; k >= 0; --k) v = v * t + poly[static_cast<std::size_t>(k)][static_cast<std::size_t>(ch)];
      c[static_cast<std::size_t>(ch)] = v;
    }
    table[static_cast<std::size_t>(i)] = {to_byte(c[0]), to_byte(c[1]), to_byte(c[2])};
  }
  return table;
}

}  // namespace

const std::array<Rgb, 256>& palette_colors(Palette palette) {
  static const std::array<Rgb, 256> inferno = evaluate(kInferno);
  static const std::array<Rgb, 256> viridis = evaluate(kViridis);
  return palette == Palette::kViridis ? viridis : inferno;
}

Rgb thread_color(std::uint8_t slot) {
  // Golden-angle hue steps: slot k and k+1 are 137.5 degrees apart, and no two of the first
  // few dozen slots are close. Saturation 0.8 and value 1 keep every hue bright.
  constexpr double kGoldenAngle = 137.50776405003785;
  const double hue = std::fmod(slot * kGoldenAngle, 360.0) / 60.0;
  const double s = 0.8;
  const double sector = std::floor(hue);
  const double f = hue - sector;
  const double p = 1.0 - s;
  const double q = 1.0 - s * f;
  const double t = 1.0 - s * (1.0 - f);
  double r = 1;
  double g = 1;
  double b = 1;
  switch (static_cast<int>(sector)) {
    case 0: r = 1; g = t; b = p; break;
    case 1: r = q; g = 1; b = p; break;
    case 2: r = p; g = 1; b = t; break;
    case 3: r = p; g = q; b = 1; break;
    case 4: r = t; g = p; b = 1; break;
    default: r = 1; g = p; b = q; break;
  }
  return {to_byte(r), to_byte(g), to_byte(b)};
}

}  // namespace haywire::glass
