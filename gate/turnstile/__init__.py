"""Turnstile hardware: relays, passage sensor, lights and buzzer, behind a thin line interface."""
