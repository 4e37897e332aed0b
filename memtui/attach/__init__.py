"""Attachable runs: the per-user run registry, the Unix-socket server every run starts, the viewer side."""
