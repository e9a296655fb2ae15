# Finds nats.c through pkg-config. Debian's own cnats CMake config names files the package does
# not ship (libnats_static.a, an unversioned libprotobuf-c.so), so it cannot be used.
# Defines NATS::nats as an imported target.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_NATS QUIET libnats)
endif()
find_path(NATS_INCLUDE_DIR nats/nats.h HINTS ${PC_NATS_INCLUDE_DIRS})
find_library(NATS_LIBRARY nats HINTS ${PC_NATS_LIBRARY_DIRS})
set(NATS_VERSION "${PC_NATS_VERSION}")
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NATS
  REQUIRED_VARS NATS_INCLUDE_DIR NATS_LIBRARY
  VERSION_VAR NATS_VERSION)
if(NATS_FOUND AND NOT TARGET NATS::nats)
  add_library(NATS::nats UNKNOWN IMPORTED)
  set_target_properties(NATS::nats PROPERTIES
    IMPORTED_LOCATION "${NATS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NATS_INCLUDE_DIR}")
endif()
mark_as_advanced(NATS_INCLUDE_DIR NATS_LIBRARY)
