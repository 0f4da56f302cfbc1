# Helpers shared by every layer's CMakeLists.txt.

# haywire_library(NAME SOURCES... DEPS ...): a layer library with public headers in include/.
function(haywire_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/include
                                     PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# haywire_unit_test(NAME SOURCES... DEPS ...): a GoogleTest binary labelled "unit".
function(haywire_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  target_compile_definitions(${name} PRIVATE
    HAYWIRE_TESTDATA_DIR="${PROJECT_SOURCE_DIR}/testdata")
  gtest_discover_tests(${name} PROPERTIES LABELS unit DISCOVERY_TIMEOUT 60)
endfunction()

# haywire_benchmark(NAME SOURCES... DEPS ...): a Google Benchmark binary (not run by ctest).
function(haywire_benchmark name)
  if(NOT HAYWIRE_BENCH)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark Threads::Threads)
endfunction()

# haywire_fuzzer(NAME SOURCES ... DEPS ... CORPUS dir...): a fuzz target exposing
# LLVMFuzzerTestOneInput. With HAYWIRE_FUZZ (clang) it links libFuzzer; otherwise it links a
# replay driver that runs the checked-in corpus plus seeded random mutations, so `make test`
# always exercises it. Either way <target>.corpus, beside the executable, lists the seed corpus
# directories one per line: scripts/run-fuzzers.sh finds every *_fuzzer and its seeds by it.
function(haywire_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;CORPUS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  set_target_properties(${name} PROPERTIES HAYWIRE_FUZZER TRUE)
  list(JOIN ARG_CORPUS "\n" corpus_lines)
  file(GENERATE OUTPUT "$<TARGET_FILE_DIR:${name}>/${name}.corpus" CONTENT "${corpus_lines}\n")
  if(HAYWIRE_FUZZ)
    # The libraries get -fsanitize=fuzzer-no-link (top-level CMakeLists.txt); this adds the
    # libFuzzer main and instruments the target's own source.
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src/base/testing/fuzz_replay_main.cc)
    add_test(NAME ${name}_replay COMMAND ${name} ${ARG_CORPUS})
    set_tests_properties(${name}_replay PROPERTIES LABELS "unit;fuzz")
  endif()
endfunction()
