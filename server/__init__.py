"""The Switchboard gRPC service (installed as ``switchboard.server``)."""
