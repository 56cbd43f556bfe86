"""Load scenarios for Switchboard and their runner: ``python -m bench`` (see README.md)."""
