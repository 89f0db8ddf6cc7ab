"""The site hub: pushes revocations and quotas to gates, collects their events and health."""
