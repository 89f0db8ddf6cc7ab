"""Test support: the fakes, simulators and local services that tests, benchmarks, fuzzing and
the demo share; never shipped, never imported by a runtime package.

- ``broker``: a Mosquitto of our own with the site ACL (``Broker``, ``free_port``).
- ``synthetic_frames``: gate-camera frames showing a ticket's QR code.
- ``ptys``: ``RawPty``, the one pseudo-terminal pair every serial fake stands behind.
- ``fake_boards``, ``fake_sam_reader``: relay boards and an ID-card reader on the far end of a pty.
- ``live_gate``: a real ``lungta gate run`` process (``GateProcess``) with its log watched
  (``WatchedProcess``), its config (``write_gate_config``) and ``kill_leftovers``.
- ``sim_gate``: the gate side of the hub protocol over MQTT, without a daemon (``SimGate``).
- ``tickets``: the fixed test site, instant and claims (``SITE``, ``NOW``, ``make_claims``).
- ``hub_config``: a hub.toml for a ``Broker`` (``write_hub_config``).
- ``demo``: ``make demo``, the whole site on this machine, narrated.

Runtime packages (``lungta``, ``protocol``, ``transport``, ``gate``, ``hub``) never import
this package: tests/test_layering.py parses their imports to hold that. setup.cfg does not
install it; tests/, bench/ and fuzz/ import it from the repository root.
"""
