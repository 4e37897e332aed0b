"""A user's own batch function under memtui's guard (``memtui run --job MODULE:FUNCTION``, ``memtui.run_job``).

``function``: import the operator's function safely; ``hooks``: the cleanups it registers;
``executor``: calls it sub-batch by sub-batch, isolating failing items; ``results``: the results file;
``items``: the ItemJob the Runner drives (memtui.jobs.base's contract).
"""
