"""A tool module that fails as it is imported."""

raise RuntimeError("broken on purpose")
