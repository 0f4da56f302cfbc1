// Per-interval telemetry: the spec's GlassRamTelemetry, extended. One value per interval;
// the live terminal line, `--once --json` and the `--record` stream all print this.
//
// Fields (units; how each is measured in sampled mode):
//   fault_rate            first writes per second that tracking reported (armed pages only:
//                         in sampled mode this is the observed rate, not an estimate)
//   pages_written_per_s   pages written per second over the whole tracked space (sampled
//                         mode: the reconstruction's estimate)
//   active_threads        distinct thread ids seen writing in the interval (0 when unknown)
//   working_set_pages     distinct pages written in the interval (sampled: estimated)
//   sampling_rate         fraction of tracked pages armed (1.0 in full mode)
//   mode                  "full" or "sampled"
//   reconstruction_f1, reconstruction_error
//                         hot-cell F1 and normalised L1 error of the last calibration
//                         (accuracy.h); null until one was measured
//   hilbert_order, memory_avalanche_detected, phase_transition_detected (detectors.h)
//   events                userfaultfd events handled (fork, remap, remove, unmap, faults)
//   interval_ms           the interval's measured length
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace haywire::glass {

enum class SamplingMode { kFull, kSampled };
std::string_view to_string(SamplingMode mode);

struct GlassTelemetry {
  double fault_rate = 0.0;
  double pages_written_per_s = 0.0;
  std::uint32_t active_threads = 0;
  std::uint64_t working_set_pages = 0;
  double sampling_rate = 1.0;
  SamplingMode mode = SamplingMode::kFull;
  std::optional<double> reconstruction_f1;
  std::optional<double> reconstruction_error;
  unsigned hilbert_order = 8;
  bool memory_avalanche_detected = false;
  bool phase_transition_detected = false;
  std::uint64_t events = 0;
  double interval_ms = 0.0;
};

// One object with the field names above (snake_case); optionals as null.
nlohmann::json to_json(const GlassTelemetry& t);

// One line for the live terminal, e.g.
// "sampled 10% | 12.3k faults/s | 48.1k pages/s | ws 4.8k pages | 3 thr | F1 0.94 err 0.08 |
//  order 8 | 17 events | 100 ms | AVALANCHE PHASE"
// While sampling is paused (sampled mode tracking in full) it begins "full (sampling paused)".
std::string to_line(const GlassTelemetry& t, bool sampling_paused = false);

}  // namespace haywire::glass
