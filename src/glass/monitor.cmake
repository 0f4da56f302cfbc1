# haywire_glass: the monitor that ties attach, tracking, layout, sampling, reconstruction and
# the detectors together for one process (what `haywire glass` drives).
haywire_library(haywire_glass
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/monitor.cc
  DEPS haywire_glass_track haywire_glass_attach haywire_glass_sense haywire_glass_map haywire_base fmt::fmt)
