# Finds Debian's CAF 0.17 (libcaf-dev), which ships neither CMake nor pkg-config files.
# Defines CAF::core as an imported target.
# CAF_INCLUDE_DIR may be a list: a CAF source tree's libcaf_core plus its build's libcaf_core
# (generated headers), as scripts/test --tsan passes for a CAF built with ThreadSanitizer.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
find_library(CAF_CORE_LIBRARY caf_core)
set(_caf_config "")
foreach(_caf_dir IN LISTS CAF_INCLUDE_DIR)
  if(NOT _caf_config AND EXISTS "${_caf_dir}/caf/config.hpp")
    set(_caf_config "${_caf_dir}/caf/config.hpp")
  endif()
endforeach()
if(_caf_config)
  file(STRINGS "${_caf_config}" _caf_version_line
       REGEX "#define CAF_VERSION [0-9]+")
  string(REGEX MATCH "[0-9]+" _caf_version "${_caf_version_line}")
  if(_caf_version)
    math(EXPR CAF_VERSION_MAJOR "${_caf_version} / 10000")
    math(EXPR CAF_VERSION_MINOR "(${_caf_version} / 100) % 100")
    math(EXPR CAF_VERSION_PATCH "${_caf_version} % 100")
    set(CAF_VERSION "${CAF_VERSION_MAJOR}.${CAF_VERSION_MINOR}.${CAF_VERSION_PATCH}")
  endif()
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR CAF_CORE_LIBRARY
  VERSION_VAR CAF_VERSION)
if(CAF_FOUND AND NOT TARGET CAF::core)
  find_package(Threads REQUIRED)
  add_library(CAF::core UNKNOWN IMPORTED)
  set_target_properties(CAF::core PROPERTIES
    IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
mark_as_advanced(CAF_INCLUDE_DIR CAF_CORE_LIBRARY)
