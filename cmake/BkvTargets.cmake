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
