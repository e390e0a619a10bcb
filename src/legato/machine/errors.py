"""How a failure is described inside a run: plain data, no exception objects."""

from __future__ import annotations

from dataclasses import dataclass, field

from legato.machine.values import JSON

TRACEBACK_LIMIT = 4000
"""Characters of traceback kept per attempt; the tail is what explains a failure."""


@dataclass(frozen=True)
class ErrorInfo:
    """A failure as recorded in history and dead letters.

    ``lineage`` holds the qualified names of the exception's classes (its MRO),
    so that retry policies can match base classes without importing anything.
    """

    type: str
    message: str
    traceback: str = ""
    lineage: tuple[str, ...] = field(default=())

    def matches(self, names: tuple[str, ...]) -> bool:
        """True when the error is, or derives from, one of ``names``.

        A name may be qualified (``builtins.ValueError``) or short (``ValueError``).
        """
        lineage = self.lineage or (self.type,)
        for name in names:
            for kind in lineage:
                if kind == name or kind.rsplit(".", 1)[-1] == name:
                    return True
        return False

    def to_json(self) -> JSON:
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "lineage": list(self.lineage),
        }

    @classmethod
    def from_json(cls, raw: JSON) -> ErrorInfo:
        return cls(
            type=raw["type"],
            message=raw.get("message", ""),
            traceback=raw.get("traceback", ""),
            lineage=tuple(raw.get("lineage", ())),
        )

    @classmethod
    def of(cls, type_: str, message: str) -> ErrorInfo:
        return cls(type=type_, message=message, lineage=(type_,))


def type_name(kind: type[BaseException]) -> str:
    """How an exception class is named in errors and policies: builtins short,
    everything else qualified (``ValueError``, ``shop.errors.PaymentDeclined``)."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def bound_traceback(text: str) -> str:
    if len(text) <= TRACEBACK_LIMIT:
        return text
    return "…" + text[-(TRACEBACK_LIMIT - 1) :]
