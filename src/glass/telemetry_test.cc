#include "haywire/glass/telemetry.h"

#include <gtest/gtest.h>

namespace haywire::glass {
namespace {

TEST(Telemetry, JsonHasEveryFieldAndNullsForUnmeasuredAccuracy) {
  GlassTelemetry t;
  t.fault_rate = 1234.5;
  t.pages_written_per_s = 9000;
  t.active_threads = 3;
  t.working_set_pages = 4096;
  t.sampling_rate = 0.1;
  t.mode = SamplingMode::kSampled;
  t.hilbert_order = 8;
  t.events = 17;
  t.interval_ms = 100.5;
  nlohmann::json j = to_json(t);
  for (const char* key : {"fault_rate", "pages_written_per_s", "active_threads", "working_set_pages",
                          "sampling_rate", "mode", "reconstruction_f1", "reconstruction_error",
                          "hilbert_order", "memory_avalanche_detected", "phase_transition_detected",
                          "events", "interval_ms"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 13u);
  EXPECT_EQ(j["mode"], "sampled");
  EXPECT_TRUE(j["reconstruction_f1"].is_null());
  EXPECT_TRUE(j["reconstruction_error"].is_null());
  EXPECT_EQ(j["working_set_pages"], 4096);
  EXPECT_DOUBLE_EQ(j["fault_rate"].get<double>(), 1234.5);

  t.reconstruction_f1 = 0.93;
  t.reconstruction_error = 0.12;
  t.mode = SamplingMode::kFull;
  j = to_json(t);
  EXPECT_DOUBLE_EQ(j["reconstruction_f1"].get<double>(), 0.93);
  EXPECT_EQ(j["mode"], "full");
  t.reconstruction_f1 = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(to_json(t)["reconstruction_f1"].is_null()) << "JSON has no NaN";
}

TEST(Telemetry, OneLineForTheTerminal) {
  GlassTelemetry t;
  t.mode = SamplingMode::kSampled;
  t.sampling_rate = 0.1;
  t.fault_rate = 12345;
  t.pages_written_per_s = 48100;
  t.working_set_pages = 4800;
  t.active_threads = 3;
  t.events = 17;
  t.interval_ms = 100;
  EXPECT_EQ(to_line(t),
            "sampled 10% | 12.3k faults/s | 48.1k pages/s | ws 4.8k pages | 3 thr | F1 - | order 8 | "
            "17 events | 100 ms");
  t.reconstruction_f1 = 0.941;
  t.reconstruction_error = 0.08;
  t.memory_avalanche_detected = true;
  t.phase_transition_detected = true;
  const std::string line = to_line(t);
  EXPECT_NE(line.find("F1 0.94 err 0.08"), std::string::npos) << line;
  EXPECT_NE(line.find("| AVALANCHE PHASE"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  t.sampling_rate = 1.0;
  EXPECT_EQ(to_line(t, true).rfind("full (sampling paused) | ", 0), 0u) << to_line(t, true);
  t.mode = SamplingMode::kFull;
  t.memory_avalanche_detected = false;
  EXPECT_EQ(to_line(t).rfind("full | ", 0), 0u);
  EXPECT_NE(to_line(t).find("| PHASE"), std::string::npos);
}

}  // namespace
}  // namespace haywire::glass
