# haywire_glass_attach: userfaultfds created inside a target and handed to the monitor, at
# launch (LD_PRELOAD agent) or for a running PID (ptrace injection + pidfd_getfd), plus the
# kernel support probe. Included by src/glass/CMakeLists.txt.

# The agent lives inside other people's processes: no sanitizers (an ASan library cannot be
# preloaded into a program without ASan), no C++ runtime, hidden symbols. It is written next to
# the haywire executable, where find_agent() looks first.
add_library(haywire_glass_agent SHARED ${CMAKE_CURRENT_SOURCE_DIR}/agent.cc)
set_target_properties(haywire_glass_agent PROPERTIES
  OUTPUT_NAME haywire-glass-agent
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/apps/haywire
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(haywire_glass_agent PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_compile_options(haywire_glass_agent PRIVATE -fno-exceptions -fno-rtti)
target_link_options(haywire_glass_agent PRIVATE -Wl,--as-needed -Wl,-z,defs -Wl,-z,now)

# Test programs run under the agent or injected into: plain binaries, no sanitizers either.
add_executable(glass_attach_target ${CMAKE_CURRENT_SOURCE_DIR}/testing/attach_target.cc)
target_link_libraries(glass_attach_target PRIVATE Threads::Threads)
add_executable(glass_static_target ${CMAKE_CURRENT_SOURCE_DIR}/testing/static_target.cc)
target_link_options(glass_static_target PRIVATE -static)

foreach(plain IN ITEMS haywire_glass_agent glass_attach_target glass_static_target)
  foreach(property IN ITEMS COMPILE_OPTIONS LINK_OPTIONS)
    get_target_property(options ${plain} ${property})
    if(options)
      list(FILTER options EXCLUDE REGEX "sanitize")
      set_target_properties(${plain} PROPERTIES ${property} "${options}")
    endif()
  endforeach()
endforeach()

haywire_library(haywire_glass_attach
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/kernel_support.cc ${CMAKE_CURRENT_SOURCE_DIR}/launch.cc
          ${CMAKE_CURRENT_SOURCE_DIR}/inject.cc
  DEPS haywire_base fmt::fmt Threads::Threads)
target_compile_definitions(haywire_glass_attach PRIVATE
  HAYWIRE_GLASS_AGENT_BUILD_PATH="$<TARGET_FILE:haywire_glass_agent>")
add_dependencies(haywire_glass_attach haywire_glass_agent)

haywire_unit_test(glass_attach_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/kernel_support_test.cc
          ${CMAKE_CURRENT_SOURCE_DIR}/launch_test.cc ${CMAKE_CURRENT_SOURCE_DIR}/inject_test.cc
  DEPS haywire_glass_attach)
add_dependencies(glass_attach_test glass_attach_target glass_static_target)
target_compile_definitions(glass_attach_test PRIVATE
  GLASS_ATTACH_TARGET="$<TARGET_FILE:glass_attach_target>"
  GLASS_STATIC_TARGET="$<TARGET_FILE:glass_static_target>")

haywire_benchmark(glass_attach_benchmark SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/attach_benchmark.cc
  DEPS haywire_glass_attach)
if(TARGET glass_attach_benchmark)
  add_dependencies(glass_attach_benchmark glass_attach_target)
  target_compile_definitions(glass_attach_benchmark PRIVATE
    GLASS_ATTACH_TARGET="$<TARGET_FILE:glass_attach_target>")
endif()

haywire_fuzzer(agent_hello_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/agent_hello_fuzzer.cc
  DEPS haywire_glass_attach CORPUS ${PROJECT_SOURCE_DIR}/testdata/fuzz/agent_hello)
