#include "haywire/glass/telemetry.h"

#include <cmath>

#include <fmt/format.h>

namespace haywire::glass {
namespace {

// 950 -> "950", 12345 -> "12.3k", 4.2e6 -> "4.2M": the live line must stay one line wide.
std::string compact(double v) {
  if (!std::isfinite(v)) return "?";
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.1f}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (a >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

nlohmann::json optional_number(const std::optional<double>& v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

}  // namespace

std::string_view to_string(SamplingMode mode) {
  return mode == SamplingMode::kFull ? "full" : "sampled";
}

nlohmann::json to_json(const GlassTelemetry& t) {
  return nlohmann::json{
      {"fault_rate", t.fault_rate},
      {"pages_written_per_s", t.pages_written_per_s},
      {"active_threads", t.active_threads},
      {"working_set_pages", t.working_set_pages},
      {"sampling_rate", t.sampling_rate},
      {"mode", std::string(to_string(t.mode))},
      {"reconstruction_f1", optional_number(t.reconstruction_f1)},
      {"reconstruction_error", optional_number(t.reconstruction_error)},
      {"hilbert_order", t.hilbert_order},
      {"memory_avalanche_detected", t.memory_avalanche_detected},
      {"phase_transition_detected", t.phase_transition_detected},
      {"events", t.events},
      {"interval_ms", t.interval_ms},
  };
}

std::string to_line(const GlassTelemetry& t, bool sampling_paused) {
  std::string line = t.mode == SamplingMode::kFull ? std::string("full")
                     : sampling_paused             ? std::string("full (sampling paused)")
                                                   : fmt::format("sampled {:.0f}%", t.sampling_rate * 100.0);
  line += fmt::format(" | {} faults/s | {} pages/s | ws {} pages | {} thr", compact(t.fault_rate),
                      compact(t.pages_written_per_s),
                      compact(static_cast<double>(t.working_set_pages)), t.active_threads);
  if (t.reconstruction_f1 && t.reconstruction_error) {
    line += fmt::format(" | F1 {:.2f} err {:.2f}", *t.reconstruction_f1, *t.reconstruction_error);
  } else if (t.mode == SamplingMode::kSampled) {
    line += " | F1 -";
  }
  line += fmt::format(" | order {} | {} events | {:.0f} ms", t.hilbert_order,
                      compact(static_cast<double>(t.events)), t.interval_ms);
  if (t.memory_avalanche_detected) line += " | AVALANCHE";
  if (t.phase_transition_detected) line += t.memory_avalanche_detected ? " PHASE" : " | PHASE";
  return line;
}

}  // namespace haywire::glass
