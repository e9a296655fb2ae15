# Finds cpp-httplib. Debian builds it as a shared library (libcpp-httplib.so, with OpenSSL, zlib
# and brotli inside) and ships a header of declarations only, so it is linked, not header-only.
# Its pkg-config file adds -DCPPHTTPLIB_OPENSSL_SUPPORT and friends, which would pull OpenSSL's
# headers into every includer; natsvisor uses only the plain httplib::Server, whose declaration
# does not depend on those defines, so they are left off. Defines HTTPLIB::httplib.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_HTTPLIB QUIET cpp-httplib)
endif()
find_path(HTTPLIB_INCLUDE_DIR httplib.h HINTS ${PC_HTTPLIB_INCLUDE_DIRS})
find_library(HTTPLIB_LIBRARY cpp-httplib HINTS ${PC_HTTPLIB_LIBRARY_DIRS})
set(HTTPLIB_VERSION "${PC_HTTPLIB_VERSION}")
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(HTTPLIB
  REQUIRED_VARS HTTPLIB_INCLUDE_DIR HTTPLIB_LIBRARY
  VERSION_VAR HTTPLIB_VERSION)
if(HTTPLIB_FOUND AND NOT TARGET HTTPLIB::httplib)
  find_package(Threads REQUIRED)
  add_library(HTTPLIB::httplib UNKNOWN IMPORTED)
  set_target_properties(HTTPLIB::httplib PROPERTIES
    IMPORTED_LOCATION "${HTTPLIB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${HTTPLIB_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
mark_as_advanced(HTTPLIB_INCLUDE_DIR HTTPLIB_LIBRARY)
