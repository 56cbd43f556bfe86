"""Generated protobuf messages and gRPC stubs of the switchboard.v1 API."""
