# worlddb_client: the C++ client library (net/client.h), used by worldctl,
# the integration tests and the network benchmark. Included from
# net/CMakeLists.txt, after the protocol header target is defined.
add_library(worlddb_client client.cc)
add_dependencies(worlddb_client worlddb_protocol_fbs)
target_include_directories(worlddb_client PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/generated)
target_link_libraries(worlddb_client PUBLIC worlddb_engine flatbuffers::flatbuffers)
