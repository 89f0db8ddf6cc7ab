"""Lungta protocol: ticket format, keys and trust, and the signed hub<->gate messages.

Knows bytes and signatures only; imports nothing of ``gate`` or ``hub``.
"""
