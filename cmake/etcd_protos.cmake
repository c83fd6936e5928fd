# Copies etcd's v3 API schema from Debian's golang-etcd-server-dev into the
# build tree, without the gogoproto and google.api (grpc-gateway) imports and
# options: they only steer Go code generation and an HTTP gateway, and their
# .proto files are not on the include path. Nothing of etcd is committed.
#   cmake -DSRC=<go.etcd.io/etcd dir> -DDST=<out dir>/etcd -P etcd_protos.cmake
foreach(rel mvcc/mvccpb/kv.proto auth/authpb/auth.proto
            etcdserver/etcdserverpb/rpc.proto)
  file(READ "${SRC}/${rel}" text)
  string(REGEX REPLACE "import \"gogoproto/[^\"]*\";" "" text "${text}")
  string(REGEX REPLACE "import \"google/api/[^\"]*\";" "" text "${text}")
  string(REGEX REPLACE "option \\(gogoproto\\.[^;]*;" "" text "${text}")
  # The http option's body may nest one level (additional_bindings { }).
  string(REGEX REPLACE
         "option \\(google\\.api\\.http\\) = {([^{}]|{[^{}]*})*};" ""
         text "${text}")
  string(REGEX REPLACE "\\[\\(gogoproto\\.[^]]*\\]" "" text "${text}")
  if(text MATCHES "gogoproto|google\\.api")
    message(FATAL_ERROR "etcd_protos.cmake: ${rel} still mentions gogoproto or "
                        "google.api after stripping: a new etcd release needs "
                        "this script updated")
  endif()
  # Unchanged content keeps the file's time stamp, so protoc doesn't rerun.
  file(CONFIGURE OUTPUT "${DST}/${rel}" CONTENT "${text}" @ONLY)
endforeach()
