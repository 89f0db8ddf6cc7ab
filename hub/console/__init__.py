"""The operator console: HTTP API, roles and audit, live dashboard, metrics and alerts (docs/console.md).

One module per idea: ``settings`` (hub.toml [http]), ``roles``, ``passwords``
(KDF, tokens, login throttle), ``audit`` (the hash chain), ``store`` (the
console's tables beside the hub's), ``actions`` (the one dispatcher of
state-changing actions, for HTTP and CLI), ``queries`` (read-only SQL),
``alerts``, ``live`` (the feed the dashboard, the API and /metrics read),
``metrics``, ``web`` (requests, routes, authentication), ``api_read`` and
``api_write`` (the routes), ``openapi``, ``server`` (HTTP, SSE, static
assets, and the composition root). ``static/`` is the dashboard.
"""
