"""Names from configuration that end up in SQL and AMQP: checked, then quoted.

A Postgres schema name goes into statements (``CREATE SCHEMA``), the
``search_path`` and the notification channels (``<schema>_timers``); a
namespace goes into every exchange and queue name. Both come from settings,
so both are held to a strict pattern before any of that happens, and a SQL
identifier is quoted as well wherever a statement takes one.
"""

from __future__ import annotations

import re

from legato.errors import ConfigurationError

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,55}")
"""Lower case (Postgres folds unquoted names, and ``search_path`` is unquoted);
at most 56 characters, so that ``<schema>_timers`` fits a 63-byte identifier."""

_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
"""Letters, digits, ``_``, ``.`` and ``-``: queue names stay within AMQP's 255 bytes."""


def check_schema(name: str) -> str:
    """``name`` if it is a valid legato schema name; else a clear error."""
    if not isinstance(name, str) or _SCHEMA.fullmatch(name) is None:
        raise ConfigurationError(
            f"database schema {name!r} is not a valid name: use lower-case letters, digits "
            "and _ (not first a digit), at most 56 characters, e.g. 'legato' (LEGATO_DATABASE_SCHEMA)"
        )
    return name


def check_namespace(name: str) -> str:
    """``name`` if it is a valid broker namespace; else a clear error."""
    if not isinstance(name, str) or _NAMESPACE.fullmatch(name) is None:
        raise ConfigurationError(
            f"namespace {name!r} is not a valid name: use letters, digits, _, . and - "
            "(not first . or -), at most 200 characters, e.g. 'legato' (LEGATO_NAMESPACE)"
        )
    return name


def quote_ident(name: str) -> str:
    """A SQL identifier, quoted (a ``"`` inside doubled): never taken as SQL."""
    return '"' + name.replace('"', '""') + '"'
