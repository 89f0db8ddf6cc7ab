"""Property-based: every operation of /api/v1/openapi.json, with data drawn from its own schemas, for every role.

The schema is loaded from the live hub; for each operation, Hypothesis draws
requests from the operation's own strategy. Each is sent with each role's
token and without one; the answer must never be a 5xx, must use a status
the document lists for the operation, and must match the document's content
type and response schema.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from hub.console.roles import Role

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_operation_answers_within_its_document_for_every_role(console) -> None:
    headers = [{"Authorization": f"Bearer {console.token(role, f'fuzz-{role.value}')}"} for role in Role] + [{}]
    schema = schemathesis.openapi.from_url(console.url + "api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "every documented operation is exercised"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            for sent in headers:
                case.call_and_validate(headers=sent, checks=CHECKS)

        check()
