"""The cache's vectors handed over: export files (export.py) and similarity search (similar.py)."""
