"""The audit log's hash chain: each entry's hash covers the one before it in
the same community (entries without a community, such as users and keys,
form the system chain), so an entry removed or changed breaks every hash
after it. Pure functions: the cloud writes the chain, `kapok verify` checks
an export of it without trusting the server's database.

    hash = SHA-256 of the canonical JSON [prev_hash, at, actor, action,
           target, community, detail]   (sorted keys, no spaces, UTF-8)
"""

import hashlib
import json
from typing import Any

GENESIS = "0" * 64  # the prev_hash of a chain's first entry


def canonical(value: Any) -> Any:
    """`value` as JSON gives it back (tuples as lists, keys as text)."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def entry_hash(
    prev_hash: str,
    *,
    at: float,
    actor: str,
    action: str,
    target: str,
    community: int | None,
    detail: Any,
) -> str:
    body = [prev_hash, float(at), actor, action, target, community, canonical(detail)]
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check(rows) -> list[str]:
    """Problems of one chain given as dicts in id order (at, actor, action,
    target, community, detail, prev_hash, hash): [] when every entry is
    there and unchanged, from the chain's first entry on."""
    problems = []
    prev = GENESIS
    for row in rows:
        label = f"entry {row.get('id', '?')}"
        if row["prev_hash"] != prev:
            problems.append(f"{label}: the entry before it is missing or was changed")
        want = entry_hash(
            row["prev_hash"],
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            community=row["community"],
            detail=row["detail"],
        )
        if want != row["hash"]:
            problems.append(f"{label}: its content does not match its hash (changed)")
        prev = row["hash"]
    return problems
