"""The failure-pattern normaliser: values masked, the failure's shape kept."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legato.patterns import error_pattern, failure_key


@pytest.mark.parametrize(
    ("message", "pattern"),
    [
        ("no workflow is triggered by event 'evt-8812'", "no workflow is triggered by event '*'"),
        ('unknown key "customer_id"', 'unknown key "*"'),
        ("order 1234 has 3 items", "order <n> has <n> items"),
        ("took 1.25s, limit -3, at 10:30:01", "took <n>s, limit <n>, at <n>"),
        (f"run {uuid.UUID(int=7)} not found", "run <uuid> not found"),
        ("run 0190f3c2a1b47e5f9c3d2b1a00ffee11 gone", "run <hex> gone"),
        ("object 5f3a9c0e1d2b4a68 missing", "object <hex> missing"),
        ("commit deadbeef7 refused", "commit <hex> refused"),
        ("address 0x7f3a at 12345678901234567890", "address <hex> at <n>"),
        ("HTTP 503 from api.example.com", "HTTP <n> from api.example.com"),
        # Names with digits in them are part of the failure's shape.
        ("sha256 mismatch in utf8 field v2", "sha256 mismatch in utf8 field v2"),
        ("order-17 can't be shipped", "order-<n> can't be shipped"),
        ("", ""),
    ],
)
def test_values_are_masked_and_the_shape_is_kept(message: str, pattern: str) -> None:
    assert error_pattern(message) == pattern


def test_a_failure_key_is_the_type_and_the_pattern() -> None:
    assert failure_key("KeyError", "'sku-991'") == "KeyError: '*'"
    assert failure_key("RuntimeError", "") == "RuntimeError"
    assert (
        failure_key(None, "no workflow is triggered by event 'x7'") == "no workflow is triggered by event '*'"
    )


_words = st.text(alphabet=st.characters(categories=("L", "Zs", "P", "S")), max_size=40)
"""Text with no digits: its numbers are the ones a test puts there."""


@given(st.text(max_size=200))
def test_a_pattern_is_its_own_pattern(message: str) -> None:
    once = error_pattern(message)
    assert error_pattern(once) == once


@given(_words, _words, st.integers(), st.integers())
def test_messages_that_differ_only_in_a_number_share_a_pattern(
    before: str, after: str, a: int, b: int
) -> None:
    assert error_pattern(f"{before} {a} {after}") == error_pattern(f"{before} {b} {after}")


def _unquoted(text: str) -> bool:
    # A value holding a quote of either kind could close or open another quoted span.
    return not any(c in text for c in "'\"\n")


@given(
    _words.filter(_unquoted),
    _words.filter(_unquoted),
    st.text(max_size=30).filter(_unquoted),
    st.text(max_size=30).filter(_unquoted),
)
def test_messages_that_differ_only_in_a_quoted_value_share_a_pattern(
    before: str, after: str, a: str, b: str
) -> None:
    assert error_pattern(f"{before} '{a}' {after}") == error_pattern(f"{before} '{b}' {after}")


@given(_words, _words, st.uuids(), st.uuids())
def test_messages_that_differ_only_in_a_uuid_share_a_pattern(
    before: str, after: str, a: uuid.UUID, b: uuid.UUID
) -> None:
    assert error_pattern(f"{before} {a} {after}") == error_pattern(f"{before} {b} {after}")


@given(_words)
def test_text_without_values_is_left_alone(text: str) -> None:
    if "'" not in text and '"' not in text:
        assert error_pattern(text) == text
