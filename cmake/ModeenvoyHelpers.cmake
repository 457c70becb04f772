# Helpers shared by tests/, bench/ and examples/.

# Abseil that tests and benchmarks call themselves. Linked explicitly: a component's private
# dependencies reach its users only through a static archive, not a shared library.
set(MODEENVOY_TEST_ABSL absl::flat_hash_map absl::flat_hash_set absl::status absl::statusor
    absl::strings absl::str_format absl::synchronization absl::time)

# Environment every test sees: where set-up put the tokenizer files and where the shared
# provider fixtures are. A value already in the configuring environment wins.
set(MODEENVOY_TEST_ENV "")
foreach(pair
    "MODEENVOY_DATA_DIR=${MODEENVOY_DATA_DIR}"
    "MODEENVOY_TOKENIZER_DIR=${MODEENVOY_DATA_DIR}/tokenizers"
    "MODEENVOY_FIXTURES_DIR=${MODEENVOY_SHARED_DATA_DIR}/provider-fixtures")
  string(REPLACE "=" ";" kv "${pair}")
  list(GET kv 0 key)
  if(DEFINED ENV{${key}})
    list(APPEND MODEENVOY_TEST_ENV "${key}=$ENV{${key}}")
  else()
    list(APPEND MODEENVOY_TEST_ENV "${pair}")
  endif()
endforeach()

# modeenvoy_add_test(<name> SOURCES a_test.cc ... [COMPONENT c] [LIBS extra ...] [LABELS l ...])
# One executable per component keeps link time down; every TEST is its own ctest entry.
# COMPONENT links modeenvoy::<c> alone instead of the umbrella, which also proves that the
# component's own dependency list is complete. Tests see the project root, so they may
# include any private header.
function(modeenvoy_add_test name)
  cmake_parse_arguments(ARG "" "COMPONENT" "SOURCES;LIBS;LABELS" ${ARGN})
  set(library modeenvoy::modeenvoy)
  if(ARG_COMPONENT)
    set(library modeenvoy::${ARG_COMPONENT})
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${library} ${MODEENVOY_TEST_ABSL} GTest::gtest
                                        GTest::gmock GTest::gtest_main ${ARG_LIBS})
  target_compile_options(${name} PRIVATE ${MODEENVOY_WARNINGS})
  # Tests get their data locations through `env`: CMake 3.25's gtest_discover_tests drops
  # all but the first entry of an ENVIRONMENT list, and a silently skipped test is a defect.
  set_target_properties(${name} PROPERTIES
    CROSSCOMPILING_EMULATOR "env;${MODEENVOY_TEST_ENV}")
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${name}"
               SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
endfunction()

# modeenvoy_add_bench(<name> SOURCES a_bench.cc ... [LIBS extra ...])
function(modeenvoy_add_bench name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE modeenvoy::modeenvoy ${MODEENVOY_TEST_ABSL}
                                        benchmark::benchmark benchmark::benchmark_main
                                        ${ARG_LIBS})
  target_compile_options(${name} PRIVATE ${MODEENVOY_WARNINGS})
endfunction()

# Adds every immediate subdirectory of the current source dir that has a CMakeLists.txt.
macro(modeenvoy_add_subdirectories)
  file(GLOB _subdirs LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT _subdirs)
  foreach(_dir IN LISTS _subdirs)
    if(IS_DIRECTORY ${_dir} AND EXISTS ${_dir}/CMakeLists.txt)
      add_subdirectory(${_dir})
    endif()
  endforeach()
endmacro()
