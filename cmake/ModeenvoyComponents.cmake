# One library per component (STYLE.md section 11). lib/<component>/CMakeLists.txt calls
# modeenvoy_add_component(); the top level then builds the umbrella modeenvoy::modeenvoy,
# the install rules and the pkg-config files from what was registered here.

# Where the private include trees of the components are generated (see below).
set(MODEENVOY_PRIVATE_INCLUDE_ROOT ${PROJECT_BINARY_DIR}/private_include)

# modeenvoy_private_include_dir(<out-var> <component>)
# Sets <out-var> to a build-tree directory holding only lib/<component> and lib/core, as
# symlinks to the sources. A component compiles with that directory, never the project root,
# on its include path, so `#include "lib/<other>/x.h"` does not resolve: the build refuses a
# reach into another component's private headers. lib/core's private headers (status_macros.h,
# mutex.h, json_reader.h, sha256.h, ...) are the one internal layer every component shares.
function(modeenvoy_private_include_dir out name)
  set(dir ${MODEENVOY_PRIVATE_INCLUDE_ROOT}/${name})
  file(MAKE_DIRECTORY ${dir}/lib)
  foreach(visible IN ITEMS ${name} core)
    if(NOT IS_SYMLINK ${dir}/lib/${visible})
      file(CREATE_LINK ${PROJECT_SOURCE_DIR}/lib/${visible} ${dir}/lib/${visible} SYMBOLIC)
    endif()
  endforeach()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()

# Maps link items of a component to pkg-config: modeenvoy::x -> modeenvoy-x, absl::x ->
# absl_x, CURL::libcurl -> libcurl, Threads::Threads -> -pthread (a flag, in <libs-var>).
# Header-only libraries (nlohmann_json) have nothing to link and are left out.
function(_modeenvoy_pc_names out_requires out_libs)
  set(requires "")
  set(libs "")
  foreach(item IN LISTS ARGN)
    if(item MATCHES "^modeenvoy::(.+)$")
      list(APPEND requires "modeenvoy-${CMAKE_MATCH_1}")
    elseif(item MATCHES "^absl::(.+)$")
      list(APPEND requires "absl_${CMAKE_MATCH_1}")
    elseif(item STREQUAL "CURL::libcurl")
      list(APPEND requires "libcurl")
    elseif(item STREQUAL "OpenSSL::Crypto")
      list(APPEND requires "libcrypto")
    elseif(item STREQUAL "PkgConfig::HIREDIS")
      list(APPEND requires "hiredis")
    elseif(item STREQUAL "PkgConfig::PCRE2")
      list(APPEND requires "libpcre2-8")
    elseif(item STREQUAL "Threads::Threads")
      list(APPEND libs "-pthread")
    elseif(item MATCHES "^nlohmann_json::")
      # header-only
    else()
      message(FATAL_ERROR "modeenvoy_add_component: no pkg-config name for '${item}'")
    endif()
  endforeach()
  list(JOIN requires " " requires)
  list(JOIN libs " " libs)
  set(${out_requires} "${requires}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
endfunction()

# modeenvoy_add_component(<name>
#     SOURCES a.cc ...
#     [PUBLIC  items ...]    what the component's public headers use (other modeenvoy::
#                            components, Abseil targets); users get these too
#     [PRIVATE items ...])   what only its .cc files use (libcurl, nlohmann_json, ...)
# Defines the library modeenvoy_<name> (libmodeenvoy_<name>.a or .so), its alias
# modeenvoy::<name> (also the exported name) and its pkg-config file modeenvoy-<name>.pc.
# Static or shared follows BUILD_SHARED_LIBS.
function(modeenvoy_add_component name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  set(target modeenvoy_${name})
  add_library(${target} ${ARG_SOURCES})
  add_library(modeenvoy::${name} ALIAS ${target})
  modeenvoy_private_include_dir(private_dir ${name})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${private_dir})
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES
    EXPORT_NAME ${name}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    DEFINE_SYMBOL MODEENVOY_COMPILE_LIBRARY
    VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  if(BUILD_SHARED_LIBS)
    target_compile_definitions(${target} PUBLIC MODEENVOY_SHARED_LIBRARY)
  endif()
  target_link_libraries(${target} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
  target_compile_options(${target} PRIVATE ${MODEENVOY_WARNINGS})
  set_property(GLOBAL APPEND PROPERTY MODEENVOY_COMPONENTS ${name})

  # pkg-config: what the public headers use is always required. What only the .cc files
  # use is needed to link a static archive, which cannot carry its dependencies, so a
  # static build lists it under Requires too (plain `pkg-config --libs` must give a working
  # link line); a shared library records its own, so there it is Requires.private.
  _modeenvoy_pc_names(pc_requires pc_libs ${ARG_PUBLIC})
  _modeenvoy_pc_names(pc_private_requires pc_private_libs ${ARG_PRIVATE})
  if(BUILD_SHARED_LIBS)
    set(PC_REQUIRES "${pc_requires}")
    set(PC_REQUIRES_PRIVATE "${pc_private_requires}")
    set(PC_LIBS "-L\${libdir} -l${target} ${pc_libs}")
    set(PC_LIBS_PRIVATE "${pc_private_libs}")
  else()
    string(JOIN " " PC_REQUIRES ${pc_requires} ${pc_private_requires})
    set(PC_REQUIRES_PRIVATE "")
    string(JOIN " " PC_LIBS "-L\${libdir}" "-l${target}" ${pc_libs} ${pc_private_libs})
    set(PC_LIBS_PRIVATE "")
  endif()
  string(STRIP "${PC_LIBS}" PC_LIBS)
  set(PC_NAME "modeenvoy-${name}")
  set(PC_DESCRIPTION "modeenvoy ${name} component")
  # Every component requires the core (directly or through another component), so the
  # compiler flags every user needs are written once, in modeenvoy-core.pc.
  set(PC_CFLAGS "-I\${includedir}")
  if(name STREQUAL "core")
    string(APPEND PC_CFLAGS " -std=c++20")
    if(BUILD_SHARED_LIBS)
      string(APPEND PC_CFLAGS " -DMODEENVOY_SHARED_LIBRARY")
    endif()
  endif()
  file(RELATIVE_PATH PC_PREFIX_REL "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/modeenvoy-component.pc.in
                 ${PROJECT_BINARY_DIR}/pkgconfig/modeenvoy-${name}.pc @ONLY)
endfunction()
