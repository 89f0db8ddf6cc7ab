"""The OpenAPI 3.1 document of ``/api/v1``, built from the route table so the two cannot drift."""

from __future__ import annotations

from .web import Route

ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}, "title": {"type": "string"}}, "required": ["error", "status"]}
COMMON = {400: "body is not JSON", 401: "no or unknown credentials", 403: "the role may not do this", 415: "body is not application/json",
          422: "a value is invalid (the message names it)", 429: "too many failed logins", 405: "method not allowed here"}


def _operation(route: Route) -> dict:
    parameters = [{"name": name, "in": "path", "required": True, "schema": schema} for name, schema in route.path_schemas.items()]
    parameters += [{"name": p.name, "in": "query", "required": False, "schema": p.schema, "description": p.description} for p in route.query]
    if route.idempotency:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                           "description": "a retry with the same key answers the same and changes nothing twice"})
    responses: dict[str, dict] = {}
    for status in route.statuses:
        if status < 300:
            content = {kind.strip(): {"schema": route.result if kind.strip() == "application/json" else {"type": "string"}} for kind in route.produces.split(",")}
            responses[str(status)] = {"description": "done", "content": content}
        else:
            responses[str(status)] = {"description": "refused", "content": {"application/json": {"schema": ERROR}}}
    for status, text in COMMON.items():
        if route.permission is None and status in (401, 403) and str(status) not in responses:
            continue
        responses.setdefault(str(status), {"description": text, "content": {"application/json": {"schema": ERROR}}})
    operation = {"summary": route.summary, "operationId": f"{route.method.lower()}_{route.pattern.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
                 "parameters": parameters, "responses": responses}
    if route.permission is not None:
        operation["security"] = [{"bearer": []}, {"session": []}]
        operation["x-permission"] = route.permission.value
    else:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    return operation


def openapi_document(routes: list[Route], site: str, version: str) -> dict:
    paths: dict[str, dict] = {}
    for route in routes:
        if route.pattern.startswith("/api/v1/") and route.pattern != "/api/v1/openapi.json":
            paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Lungta hub console API (site {site})", "version": version,
                 "description": "Roles: viewer (read), operator (revoke, quotas, commands), admin (accounts, tokens), sales (revocations only). See docs/console.md."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}, "session": {"type": "apiKey", "in": "cookie", "name": "lungta_session"}}},
    }
