"""A city platform's client for Kapok's read-only data API (docs/platform.md).

Follows the readings cursor from where it stopped last time (kept in a small
state file), so it can run from cron every few minutes and never miss or
repeat a reading; and fetches a month as CSV or Parquet.

    export KAPOK_API_KEY=kapok_ak_...
    python platform_client.py https://kapok.example.org follow --state cursor.txt
    python platform_client.py https://kapok.example.org month 3 2026-01 --format parquet

Needs only httpx.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx


def pages(client: httpx.Client, path: str, cursor: str | None = None, **params):
    """(items, cursor) page by page until the server has nothing newer. Pass
    the last cursor next time to go on from there. Waits out a 429."""
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        if r.status_code == 429:
            time.sleep(int(r.headers.get("Retry-After", "5")))
            continue
        r.raise_for_status()
        page = r.json()
        if not page["items"]:
            return
        cursor = page["cursor"]
        yield page["items"], cursor


def follow(client: httpx.Client, state: Path, out, **params) -> int:
    """Write new readings as JSON lines to `out`; keep the cursor in `state`
    only after the page is written (a crash repeats a page, never loses one)."""
    start = state.read_text().strip() if state.exists() else None
    count = 0
    for items, cursor in pages(client, "/api/v1/platform/readings", start, **params):
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
        out.flush()
        tmp = state.with_suffix(".tmp")
        tmp.write_text(cursor)
        tmp.replace(state)
        count += len(items)
    return count


def month(client: httpx.Client, community: int, month: str, fmt: str = "csv") -> bytes:
    r = client.get(
        "/api/v1/platform/readings/export",
        params={"community": community, "month": month, "format": fmt},
    )
    r.raise_for_status()
    return r.content


def connect(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=60)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("follow", help="new readings since last time, as JSON lines")
    f.add_argument("--state", type=Path, default=Path("kapok-cursor.txt"))
    f.add_argument("--name", help="only readings of this name, e.g. vol")
    m = sub.add_parser("month", help="a month of one community's readings")
    m.add_argument("community", type=int)
    m.add_argument("month", help="YYYY-MM")
    m.add_argument("--format", choices=("csv", "parquet"), default="csv")
    m.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    key = os.environ.get("KAPOK_API_KEY")
    if not key:
        p.error("set KAPOK_API_KEY to the key the community's manager gave you")
    with connect(args.url, key) as client:
        if args.cmd == "follow":
            params = {"n": args.name} if args.name else {}
            n = follow(client, args.state, sys.stdout, **params)
            print(f"{n} new readings", file=sys.stderr)
        else:
            data = month(client, args.community, args.month, args.format)
            out = args.out or Path(f"kapok-{args.community}-{args.month}.{args.format}")
            out.write_bytes(data)
            print(f"{out}: {len(data)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
