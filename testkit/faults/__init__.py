"""The fault harness: a whole site on real processes (Mosquitto, ``lungta hub run``, gates in
network namespaces) and the faults injected into it, with the invariants checked after.

Shared by the fault suite (tests/faults/), the soak run (``python -m testkit.faults.soak``,
``make soak``) and the partition benchmark (bench/bench_faults.py).
"""
