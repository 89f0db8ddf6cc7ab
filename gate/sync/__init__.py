"""The gate's side of hub sync: applying signed hub messages, uploading the outbox, health."""
