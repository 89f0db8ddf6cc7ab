"""Durable local state of a gate: revocations, used tickets, the event outbox, trusted time."""
