"""legato's own chaos suite: real workers, real servers of its own, faults on a schedule.

``make chaos`` (``python -m tests.chaos``) runs it at full size; a short
variant runs in the test suite (tests/outages/test_chaos_short.py). docs/operations.md says what it
injects, what it checks and what it found.
"""
