# Warnings are errors on our own code only; generated protobuf code is built
# without them (see proto/CMakeLists.txt).
function(bkv_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# bkv_test(NAME SOURCES src... LIBS lib... [PREFIX p] [PROPERTIES k v...]):
# one GoogleTest binary, registered with ctest test by test so `ctest -R`
# selects single cases. PREFIX is prepended to every ctest name (ctest -R is
# case-sensitive, so e.g. PREFIX "crash." makes `ctest -R crash` select them).
function(bkv_test name)
  cmake_parse_arguments(ARG "" "PREFIX" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  bkv_strict(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    TEST_PREFIX "${ARG_PREFIX}"
    PROPERTIES ENVIRONMENT "BKV_SOURCE_DIR=${PROJECT_SOURCE_DIR}" ${ARG_PROPERTIES}
    DISCOVERY_TIMEOUT 60)
endfunction()

# bkv_man_page(target "description"): TARGET.1 from the binary's --help and
# --version by help2man (Debian's help2man), built with the target and
# installed to share/man/man1. Without help2man there is no man page; the
# install says so rather than failing the build.
find_program(BKV_HELP2MAN help2man)
function(bkv_man_page target description)
  if(NOT BKV_HELP2MAN)
    message(STATUS "help2man not found: no man page for ${target}")
    return()
  endif()
  set(page ${CMAKE_CURRENT_BINARY_DIR}/${target}.1)
  add_custom_command(OUTPUT ${page}
    COMMAND ${BKV_HELP2MAN} --no-info --no-discard-stderr
            --name=${description} --output=${page} $<TARGET_FILE:${target}>
    DEPENDS ${target} VERBATIM)
  add_custom_target(${target}_man ALL DEPENDS ${page})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endfunction()
