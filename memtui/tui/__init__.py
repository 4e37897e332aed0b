"""The operator TUI (issue 4): a Textual app that runs the engine in a thread worker beside live panels.

Imported only when the TUI runs: the engine, the jobs and the headless face never import it.
"""
