"""Lungta transport: the MQTT link (paho threads, sessions, queues) between gates and the hub.

``protocol/`` knows bytes and signatures; this package moves those bytes. It imports
``protocol`` at most, never ``gate`` or ``hub`` (tests/test_layering.py checks).
"""
