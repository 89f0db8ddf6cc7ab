"""A revocation retried with the same Idempotency-Key, even concurrently, is performed once."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from hub.console.roles import Role


def test_concurrent_retries_with_one_key_revoke_once_and_answer_the_same(console) -> None:
    sales = console.client(Role.SALES)
    body = {"ticket_ids": [os.urandom(16).hex() for _ in range(3)], "reason": "refund"}
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: sales.post("/api/v1/revocations", body, headers={"Idempotency-Key": "order-4711-refund"}), range(12)))
    assert {answer.status for answer in answers} == {201}
    assert len({answer.body for answer in answers}) == 1, "every retry gets the first answer"
    assert sum(answer.headers.get("idempotent-replayed") == "true" for answer in answers) == 11
    seqs = answers[0].json()["seqs"]
    audit = console.client(Role.ADMIN).get("/api/v1/audit").json()["items"]
    assert [entry["action"] for entry in audit].count("revoke") == 1
    assert len(sales.get("/api/v1/revocations").json()["items"]) == 3
    again = sales.post("/api/v1/revocations", body, headers={"Idempotency-Key": "order-4711-refund"})
    assert again.json()["seqs"] == seqs
    other = sales.post("/api/v1/revocations", {**body, "reason": "other"}, headers={"Idempotency-Key": "order-4711-refund"})
    assert other.status == 409, "a key reused for another request is refused, not replayed"
