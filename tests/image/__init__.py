"""The container image (deploy/Dockerfile), built and run with podman: scripts/image-check.sh."""
