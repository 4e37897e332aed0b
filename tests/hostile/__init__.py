"""The hostile lane: attacker-shaped and unlucky-user cases, one file per surface.

Real files, real processes, another uid (``setpriv``), device nodes (``mknod``),
real memory cgroups where the machine allows; what needs root or a cgroup
skips with a visible reason. ``docs/threat-model.md`` names the test that
guards each surface.
"""
