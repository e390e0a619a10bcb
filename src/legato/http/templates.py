"""Templates that map a webhook delivery to an event name and an idempotency key.

Literal text with placeholders: ``{header.NAME}`` is a request header,
``{body.PATH}`` a field of the JSON body (a dotted path: ``{body.data.object.id}``).
``github.{header.X-GitHub-Event}`` names a GitHub push ``github.push``;
``{body.id}`` keys a Stripe delivery by its event id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{(header|body)\.([^{}]+)\}")


class TemplateError(ValueError):
    """A template is malformed, or a delivery lacks what it names."""


@dataclass(frozen=True)
class Template:
    text: str

    def __post_init__(self) -> None:
        rest = _PLACEHOLDER.sub("", self.text)
        if "{" in rest or "}" in rest:
            raise TemplateError(f"template {self.text!r}: placeholders are {{header.NAME}} or {{body.PATH}}")
        if not self.text:
            raise TemplateError("a template cannot be empty")

    def render(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> str:
        """The text with every placeholder filled; TemplateError names what the delivery lacks."""

        def fill(match: re.Match[str]) -> str:
            source, name = match.group(1), match.group(2)
            if source == "header":
                value = headers.get(name)
                if not value:
                    raise TemplateError(f"the delivery has no {name} header")
                return value.strip()
            return _field(body, name)

        return _PLACEHOLDER.sub(fill, self.text)


def _field(body: Mapping[str, Any], path: str) -> str:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise TemplateError(f"the delivery's body has no field {path!r}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise TemplateError(f"the delivery's field {path!r} must be a non-empty string or an integer")
    return str(value)
