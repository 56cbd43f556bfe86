"""End-to-end tests: real programs (grpcurl, Node.js, pip, the bench) against real servers."""
