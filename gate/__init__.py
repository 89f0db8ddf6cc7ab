"""The gate: decides offline on each scanned ticket.

``engine`` and ``decision`` are the pure core; ``cache`` holds durable local
state; ``scanner`` and ``turnstile`` are the hardware edges.
"""
