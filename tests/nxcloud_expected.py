"""What the NXCLOUD pipeline must hold for a number, predicted from the sandbox's outcomes."""

from __future__ import annotations

from collections.abc import Sequence

from phonecheck.parsers.nxcloud import parse_number_check_push, parse_query_row
from phonecheck.sandbox import outcomes


def predicted_row(
    phone: str,
    level: int,
    batch_no: str,
    columns: Sequence[str],
    profile: str = "default",
    *,
    pushed: bool = True,
    queried: bool = True,
) -> dict:
    """The merged row of the answers that reached us (``pushed``: the result push; ``queried``:
    the query row): the push's values, holes filled by the query row (under the strict profile
    in the shape of the vendor's example rows); price and currency from one answer;
    ``check_level`` the level submitted. The query API is only asked for what the pushes did not
    bring, so a number whose push arrived usually has no query row."""
    if not (pushed or queried):
        raise ValueError("a row comes from a push, a query row or both")
    item = outcomes.nxcloud_query_row(phone, level, batch_no=batch_no)
    if profile == "strict":
        item.update(checkLevel=2, validity="", reachable="", roaming="", price=0)
    query = parse_query_row(item) if queried else {}
    push = parse_number_check_push(outcomes.nxcloud_result(phone, level, batch_no=batch_no)) if pushed else {}
    merged = {k: (push[k] if push.get(k) is not None else query.get(k)) for k in columns}
    if push.get("price") is None:
        merged["currency"] = query.get("currency")
    merged["check_level"] = level
    return merged
