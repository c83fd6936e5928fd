# `cmake --install`: the C ABI (libbkv.so, bkv/bkv.h) as bkv::bkv, a
# pkg-config file, and the C++ SDK (static libraries and headers) as
# bkv::sdk, source-compatible only. find_package(bkv CONFIG) finds both;
# bkv::sdk needs the SDK's dependencies' development packages (docs/sdk.md).
include(CMakePackageConfigHelpers)
set(bkv_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/bkv)

install(TARGETS bkv_shared EXPORT bkvTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/client/include/bkv/bkv.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/bkv)
install(EXPORT bkvTargets NAMESPACE bkv:: DESTINATION ${bkv_cmake_dir})

# The C++ SDK: its headers keep their source-tree paths under include/bkv/sdk.
set_target_properties(bkv_client PROPERTIES EXPORT_NAME sdk)
set_target_properties(bkv_crypto PROPERTIES EXPORT_NAME sdk_crypto)
set_target_properties(bkv_net PROPERTIES EXPORT_NAME sdk_net)
set_target_properties(bkv_proto_vault PROPERTIES EXPORT_NAME sdk_proto)
target_include_directories(bkv_client INTERFACE
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/bkv/sdk>)
install(TARGETS bkv_client bkv_crypto bkv_net bkv_proto_vault EXPORT bkvSdkTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}/bkv)
install(EXPORT bkvSdkTargets NAMESPACE bkv:: DESTINATION ${bkv_cmake_dir})
foreach(dir client client/repo crypto)
  file(GLOB headers ${PROJECT_SOURCE_DIR}/${dir}/*.h)
  list(FILTER headers EXCLUDE REGEX "c_api_internal\\.h$")
  install(FILES ${headers}
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/bkv/sdk/${dir})
endforeach()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/bkvConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/bkvConfig.cmake INSTALL_DESTINATION ${bkv_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/bkvConfigVersion.cmake
  VERSION ${BKV_ABI_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/bkvConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/bkvConfigVersion.cmake
  DESTINATION ${bkv_cmake_dir})

configure_file(${PROJECT_SOURCE_DIR}/cmake/bkv.pc.in
  ${CMAKE_CURRENT_BINARY_DIR}/bkv.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/bkv.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
