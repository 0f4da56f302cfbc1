# haywire_glass_sense: sampled mode (which pages to arm), reconstruction of the full density
# map, its accuracy against full tracking and the adaptive rate, the two detectors, telemetry.
# Pure computation on per-cell counts: no kernel, no process (docs/glass.md).
haywire_library(haywire_glass_sense
  SOURCES sampling.cc reconstruct.cc accuracy.cc detectors.cc telemetry.cc
  DEPS haywire_glass_map haywire_base nlohmann_json::nlohmann_json)

# Synthetic write patterns for tests and benchmarks (#include "glass/testing/synthetic_workload.h").
haywire_library(haywire_glass_sense_testing
  SOURCES testing/synthetic_workload.cc
  DEPS haywire_glass_sense)
target_include_directories(haywire_glass_sense_testing PUBLIC ${PROJECT_SOURCE_DIR}/src)

haywire_unit_test(glass_sense_test
  SOURCES sampling_test.cc reconstruct_test.cc accuracy_test.cc detectors_test.cc telemetry_test.cc
  DEPS haywire_glass_sense haywire_glass_sense_testing)

haywire_benchmark(glass_sense_benchmark
  SOURCES sense_benchmark.cc
  DEPS haywire_glass_sense haywire_glass_sense_testing)
