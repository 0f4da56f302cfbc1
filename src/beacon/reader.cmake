# Host side of the beacon protocol: decoders, discovery, reader, camera requests.
haywire_library(haywire_beacon
  SOURCES decode.cc rle.cc discovery.cc reader.cc
  DEPS haywire_guest haywire_base fmt::fmt)

set(beacon_test_sources decode_test.cc rle_test.cc reader_test.cc)
set(beacon_test_deps haywire_beacon)
# The end-to-end tests against the real companion code join once its library exists.
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/companion.cmake AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/reader_companion_test.cc)
  list(APPEND beacon_test_sources reader_companion_test.cc)
  list(APPEND beacon_test_deps haywire_companion_lib)
endif()
haywire_unit_test(beacon_test SOURCES ${beacon_test_sources} DEPS ${beacon_test_deps})

haywire_benchmark(beacon_benchmark SOURCES reader_benchmark.cc DEPS haywire_beacon)

haywire_fuzzer(beacon_page_fuzzer SOURCES page_fuzzer.cc DEPS haywire_beacon
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/beacon_page)
haywire_fuzzer(beacon_block_fuzzer SOURCES block_fuzzer.cc DEPS haywire_beacon
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/beacon_block)
haywire_fuzzer(beacon_rle_fuzzer SOURCES rle_fuzzer.cc DEPS haywire_beacon
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/beacon_rle)
haywire_fuzzer(beacon_discovery_fuzzer SOURCES discovery_fuzzer.cc DEPS haywire_beacon
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/beacon_discovery)
