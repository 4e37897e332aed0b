"""Test support shared across test packages (fake executors, tiny inputs)."""
