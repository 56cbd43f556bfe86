"""Integration tests: real processes (Envoy, several replicas) in front of real servers."""
