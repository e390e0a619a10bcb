"""How the CLI logs: text for people, or one JSON object per line for log shippers.

``legato --log-format json worker`` (or ``LEGATO_LOG_FORMAT=json``) writes each
record as a JSON object with ``time``, ``level``, ``logger`` and ``message``,
plus the record's structured fields (the ``extra`` of the logging call: a failed
attempt's ``run_id``, ``workflow``, ``state``, ``attempt``, ``error_type``,
``error_message``, ``next``, ``retry_at``...) as keys of their own, and the
traceback under ``exc_info`` when there is one.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has: anything else on a record was given as ``extra``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises on a value it cannot encode."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, log_format: LogFormat | str = LogFormat.TEXT) -> None:
    """Log to stderr at ``level`` in ``log_format`` (the CLI's ``--log-level``/``--log-format``)."""
    handler = logging.StreamHandler(sys.stderr)
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
