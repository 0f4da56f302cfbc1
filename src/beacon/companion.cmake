# The beacon companion (writer side of protocol.h): collectors over /proc, record and RLE
# encoders, page sealing, cameras, the cycle. The same sources build the static guest binary in
# guest/companion (without sanitizers); here they form a library for unit tests, benchmarks and
# the host-side companion (--ram-file).
set(HAYWIRE_COMPANION_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/companion/proc.cc
  ${CMAKE_CURRENT_LIST_DIR}/companion/records.cc
  ${CMAKE_CURRENT_LIST_DIR}/companion/area.cc
  ${CMAKE_CURRENT_LIST_DIR}/companion/camera.cc
  ${CMAKE_CURRENT_LIST_DIR}/companion/companion.cc
  CACHE INTERNAL "companion library sources, also compiled by guest/companion")

haywire_library(haywire_companion_lib SOURCES ${HAYWIRE_COMPANION_SOURCES})

# The host-side companion (sanitized in debug builds): `companion --ram-file FILE`.
add_executable(haywire-companion-host ${CMAKE_CURRENT_LIST_DIR}/companion/main.cc)
target_link_libraries(haywire-companion-host PRIVATE haywire_companion_lib)

haywire_unit_test(companion_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/companion/companion_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/companion/encoders_test.cc
  DEPS haywire_companion_lib haywire_base)
# The camera tests watch haywire-touch: a static child without a sanitizer's shadow mappings.
if(TARGET haywire-touch OR EXISTS ${PROJECT_SOURCE_DIR}/guest/companion/CMakeLists.txt)
  target_compile_definitions(companion_test PRIVATE
    HAYWIRE_TOUCH_BIN="${PROJECT_BINARY_DIR}/guest/companion/haywire-touch")
endif()

haywire_benchmark(companion_benchmark
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/companion/companion_benchmark.cc
  DEPS haywire_companion_lib)

haywire_fuzzer(companion_proc_fuzzer
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/companion/proc_fuzzer.cc
  DEPS haywire_companion_lib
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/companion_proc)
