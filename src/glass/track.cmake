# Write tracking of a host process: /proc/PID/maps, userfaultfd, PAGEMAP_SCAN, the tracker and
# the thread sampler. uapi.h (private) holds the kernel definitions Debian 12's headers lack.
haywire_library(haywire_glass_track
  SOURCES maps.cc uffd.cc pagemap_scan.cc tracker.cc thread_sampler.cc
  DEPS haywire_base fmt::fmt Threads::Threads)

# The test workload: writes a known set of pages and logs it. Built next to the haywire binary so
# tests and people find it as $(dirname haywire)/glass-workload.
add_executable(glass-workload testing/workload.cc)
target_link_libraries(glass-workload PRIVATE haywire_base fmt::fmt Threads::Threads)
set_target_properties(glass-workload PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/apps/haywire)

haywire_unit_test(glass_track_test
  SOURCES maps_test.cc pagemap_scan_test.cc tracker_test.cc thread_sampler_test.cc workload_test.cc
  DEPS haywire_glass_track fmt::fmt)
add_dependencies(glass_track_test glass-workload)
target_compile_definitions(glass_track_test PRIVATE
  HAYWIRE_GLASS_WORKLOAD="$<TARGET_FILE:glass-workload>")

haywire_fuzzer(proc_maps_fuzzer SOURCES maps_fuzzer.cc DEPS haywire_glass_track
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/proc_maps)

haywire_benchmark(glass_track_benchmark SOURCES track_benchmark.cc DEPS haywire_glass_track)

# Whole-process A/B: a writer's rate watched by `haywire glass --pid` vs unwatched, same run.
if(HAYWIRE_BENCH)
  add_executable(glass_onoff_benchmark onoff_benchmark.cc)
  target_link_libraries(glass_onoff_benchmark PRIVATE fmt::fmt Threads::Threads)
  target_compile_definitions(glass_onoff_benchmark PRIVATE HAYWIRE_CLI="$<TARGET_FILE:haywire>")
  add_dependencies(glass_onoff_benchmark haywire)
endif()
