# haywire_glass_map: Hilbert curve, address → cell layout, rendering, PNG output.
# Paths are relative to this file so the fragment can be included from elsewhere too.
set(_map ${CMAKE_CURRENT_LIST_DIR})
find_package(PNG REQUIRED)
haywire_library(haywire_glass_map
  SOURCES ${_map}/hilbert.cc ${_map}/hilbert_avx2.cc ${_map}/layout.cc ${_map}/colormap.cc
          ${_map}/render.cc ${_map}/render_avx2.cc ${_map}/png.cc
  DEPS haywire_base fmt::fmt PNG::PNG)
set_source_files_properties(${_map}/hilbert_avx2.cc ${_map}/render_avx2.cc PROPERTIES COMPILE_OPTIONS -mavx2)

haywire_unit_test(glass_map_test
  SOURCES ${_map}/hilbert_test.cc ${_map}/layout_test.cc ${_map}/render_test.cc
          ${_map}/png_test.cc
  DEPS haywire_glass_map)

haywire_benchmark(glass_map_benchmark
  SOURCES ${_map}/map_benchmark.cc
  DEPS haywire_glass_map)

haywire_fuzzer(glass_layout_fuzzer SOURCES ${_map}/layout_fuzzer.cc DEPS haywire_glass_map
  CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/glass_layout)
