"""Property tests: listing and conditional reads against small, obviously-right models."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultaire.catalog.listing import list_page
from vaultaire.engine.conditions import Outcome, ReadConditions, evaluate
from vaultaire.model import Artifact

# Few distinct characters so prefixes and delimiters collide often; 'é' and '😀' test byte order.
keys_strategy = st.lists(st.text(alphabet="ab/-é😀", min_size=1, max_size=6), unique=True, max_size=40)


def model_listing(keys: list[str], prefix: str, delimiter: str) -> list[tuple[str, bool]]:
    """Every entry of a full listing in S3 order: (key or common prefix, is_prefix)."""
    entries: dict[str, bool] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            entries[prefix + rest[: rest.index(delimiter) + len(delimiter)]] = True
        else:
            entries[key] = False
    return sorted(entries.items(), key=lambda kv: kv[0].encode())


def paged(keys: list[str], prefix: str, delimiter: str, limit: int) -> list[tuple[str, bool]]:
    """Walk list_page over an in-memory sorted index, page by page, as a client would."""
    index = sorted(k.encode() for k in keys)

    def fetch(lower: bytes, inclusive: bool, upper: bytes | None, n: int) -> list[bytes]:
        start = bisect.bisect_left(index, lower) if inclusive else bisect.bisect_right(index, lower)
        out = []
        for key in index[start:]:
            if upper is not None and key >= upper:
                break
            out.append(key)
            if len(out) == n:
                break
        return out

    seen: list[tuple[str, bool]] = []
    after = None
    for _ in range(len(keys) + 2):
        rows, prefixes, truncated, last = list_page(
            fetch, lambda k: k, prefix.encode(), delimiter.encode(), after, limit
        )
        page = [(r.decode(), False) for r in rows] + [(p.decode(), True) for p in prefixes]
        assert len(page) <= limit
        seen += sorted(page, key=lambda kv: kv[0].encode())
        if not truncated:
            return seen
        assert last is not None
        after = last
    raise AssertionError("pagination did not end")


@settings(max_examples=300, deadline=None)
@given(
    keys_strategy,
    st.sampled_from(["", "a", "a/", "é", "b-"]),
    st.sampled_from(["", "/", "-", "a/", "😀"]),
    st.integers(min_value=1, max_value=7),
)
def test_paged_listing_equals_the_model(keys, prefix, delimiter, limit):
    assert paged(keys, prefix, delimiter, limit) == model_listing(keys, prefix, delimiter)


def model_condition(c: ReadConditions, md5: str, modified: int) -> Outcome:
    def matches(header: str) -> bool:
        tags = [t.strip().strip('"') for t in header.split(",")]
        return "*" in tags or md5 in tags

    # RFC 7232 section 6 order, as S3 applies it.
    if c.if_match is not None and not matches(c.if_match):
        return Outcome.FAILED
    if c.if_match is None and c.if_unmodified_since is not None and modified > c.if_unmodified_since:
        return Outcome.FAILED
    if c.if_none_match is not None and matches(c.if_none_match):
        return Outcome.NOT_MODIFIED
    if c.if_none_match is None and c.if_modified_since is not None and modified <= c.if_modified_since:
        return Outcome.NOT_MODIFIED
    return Outcome.PROCEED


etags = st.sampled_from(['"abc"', "abc", '"def"', "*", '"def", "abc"', None])
dates = st.one_of(st.none(), st.integers(min_value=990, max_value=1010).map(float))


@settings(max_examples=500, deadline=None)
@given(etags, etags, dates, dates, st.integers(min_value=995, max_value=1005))
def test_conditions_follow_the_precedence_model(if_match, if_none_match, since, unmodified, modified):
    c = ReadConditions(if_match, if_none_match, since, unmodified)
    artifact = Artifact(1, "k", "loc", 1, "abc", modified + 0.5)
    assert evaluate(c, artifact) == model_condition(c, "abc", modified)
