# Warnings are errors on our own code only; generated protobuf code is built
# without them (see proto/CMakeLists.txt).
function(bkv_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

# bkv_test(NAME src... LIBS lib...): one GoogleTest binary, registered with
# ctest test by test so `ctest -R` selects single cases.
function(bkv_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  bkv_strict(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES ENVIRONMENT "BKV_SOURCE_DIR=${PROJECT_SOURCE_DIR}" ${ARG_PROPERTIES}
    DISCOVERY_TIMEOUT 60)
endfunction()
