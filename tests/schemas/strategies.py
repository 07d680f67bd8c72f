"""Hypothesis strategies shared by the payload families' property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

import schemas

# IDs: printable text incl. markup characters and digit-only strings with leading zeros; XML 1.0
# cannot carry control characters or lone surrogates, and lxml normalises \r, so leave those out.
_ID_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\r"
)
ids = st.one_of(
    st.text(_ID_ALPHABET, min_size=1, max_size=40).filter(lambda s: s.strip() == s and s != ""),
    st.from_regex(r"\A0[0-9]{1,8}\Z"),
)
short_text = st.text(_ID_ALPHABET, max_size=30).filter(lambda s: s.strip() == s)

datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=7 * 86400).map(lambda s: timedelta(seconds=s))
finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=32).map(float)

targets = st.builds(
    schemas.Target,
    group_ids=st.lists(ids, max_size=2).map(tuple),
    group_names=st.lists(ids, max_size=2).map(tuple),
    resource_ids=st.lists(ids, max_size=2).map(tuple),
    ven_ids=st.lists(ids, max_size=2).map(tuple),
    party_ids=st.lists(ids, max_size=2).map(tuple),
)
ei_responses = st.builds(
    schemas.EiResponse,
    code=st.sampled_from([200, 400, 450, 451, 452, 453, 454, 459, 460, 461, 462, 463, 469]),
    description=st.one_of(st.none(), short_text),
    request_id=ids,
)

# ---------------------------------------------------------------- appended: registration / opt

# emix:marketContext and other xs:anyURI values: plain http(s) URLs.
uris = st.from_regex(
    r"\Ahttps?://[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6})?(/[A-Za-z0-9_.~-]{1,12}){0,3}\Z"
)
# ei:EiExtensionTokenType (x-\S.*) as an xs:token: no leading, trailing or doubled whitespace.
_TOKEN_WORD = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=8
)
extension_tokens = st.lists(_TOKEN_WORD, min_size=1, max_size=3).map(lambda w: "x-" + " ".join(w))
