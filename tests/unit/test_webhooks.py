"""Webhook signatures, templates and settings: no server needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from legato.config import WebhookSettings, load_settings
from legato.errors import ConfigurationError
from legato.http.signatures import (
    Refusal,
    Scheme,
    SignatureRefused,
    github_signature,
    stripe_signature,
    verify,
)
from legato.http.templates import Template, TemplateError
from legato.http.webhooks import WebhookSource, webhook_sources


def test_the_github_documented_vector() -> None:
    # docs.github.com, "Validating webhook deliveries": this secret and payload give this signature.
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(secret, body) == expected
    verify(Scheme.GITHUB, secret, {"X-Hub-Signature-256": expected}, body, 0.0, 300)
    with pytest.raises(SignatureRefused) as refused:
        verify(Scheme.GITHUB, secret, {"X-Hub-Signature-256": expected}, b"Hello, World?", 0.0, 300)
    assert refused.value.reason is Refusal.MISMATCH


@pytest.mark.parametrize(
    ("signed_at", "now", "reason"),
    [
        (1000, 1000, None),
        (1000, 1300, None),  # at the tolerance
        (1000, 1301, Refusal.EXPIRED),
        (1000, 699, Refusal.EXPIRED),
    ],
)
def test_stripe_timestamps_within_the_tolerance_only(
    signed_at: int, now: float, reason: Refusal | None
) -> None:
    header = {"Stripe-Signature": stripe_signature(b"k", b"{}", signed_at)}
    if reason is None:
        verify(Scheme.STRIPE, b"k", header, b"{}", now, 300)
        return
    with pytest.raises(SignatureRefused) as refused:
        verify(Scheme.STRIPE, b"k", header, b"{}", now, 300)
    assert refused.value.reason is reason
    assert "k" not in str(refused.value).split(":")[0]


def test_a_stripe_header_may_carry_several_signatures() -> None:
    good = stripe_signature(b"new", b"{}", 50).split(",")[1]
    header = {"Stripe-Signature": f"t=50,v1={'0' * 64},{good}"}
    verify(Scheme.STRIPE, b"new", header, b"{}", 50, 300)


def test_templates_fill_headers_and_body_fields() -> None:
    template = Template("shop.{header.X-Kind}.{body.data.object.id}")
    assert template.render({"X-Kind": "paid"}, {"data": {"object": {"id": 7}}}) == "shop.paid.7"
    with pytest.raises(TemplateError, match="no X-Kind header"):
        template.render({}, {"data": {"object": {"id": 7}}})
    with pytest.raises(TemplateError, match=re.escape("no field 'data.object.id'")):
        template.render({"X-Kind": "paid"}, {"data": {}})
    with pytest.raises(TemplateError, match="must be a non-empty string or an integer"):
        template.render({"X-Kind": "paid"}, {"data": {"object": {"id": {"nested": 1}}}})
    for bad in ("{header}", "a{b", "{query.x}", ""):
        with pytest.raises(TemplateError):
            Template(bad)


def test_webhook_tables_are_read_and_the_secret_can_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(
        '[webhooks.gh]\nprovider = "github"\nsecret = "from-file"\n'
        '[webhooks.pay-ments]\nprovider = "stripe"\nevent = "pay.{body.type}"\nkey = "{body.id}"\ntolerance = 60\n'
    )
    settings = load_settings(config, env={"LEGATO_WEBHOOK_PAY_MENTS_SECRET": "from-env"})
    assert settings.webhooks["gh"] == WebhookSettings("github", "from-file")
    assert settings.webhooks["pay-ments"] == WebhookSettings(
        "stripe", "from-env", "pay.{body.type}", "{body.id}", 60.0
    )
    sources = webhook_sources(settings.webhooks)
    assert sources["gh"].event.text == "github.{header.X-GitHub-Event}"
    assert sources["gh"].key.text == "github:{header.X-GitHub-Delivery}"
    assert sources["pay-ments"].scheme is Scheme.STRIPE
    # Secrets stay out of every repr (settings are printed in errors and logs).
    for shown in (repr(settings), repr(sources)):
        assert "from-file" not in shown
        assert "from-env" not in shown


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            '[webhooks.gh]\nprovider = "github"\n',
            {},
            "[webhooks.gh] needs secret (or LEGATO_WEBHOOK_GH_SECRET)",
        ),
        ('[webhooks.gh]\nsecret = "s"\n', {}, "[webhooks.gh] needs provider"),
        (
            '[webhooks.gh]\nprovider = "github"\nsecret = "s"\ncolour = 1\n',
            {},
            "unknown setting [webhooks.gh] colour",
        ),
        ("[webhooks]\ngh = 1\n", {}, "[webhooks.gh] must be a table"),
        (
            '[webhooks.gh]\nprovider = "github"\nsecret = "s"\ntolerance = "long"\n',
            {},
            "tolerance must be a number",
        ),
        ("[ingress]\nmax_body = 0\n", {}, "ingress max_body must be >= 1"),
        ("", {"LEGATO_INGRESS_MAX_WAIT": "forever"}, "[ingress] max_wait must be a number"),
    ],
)
def test_bad_webhook_and_ingress_settings_name_what_is_wrong(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "legato.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_settings(config, env=env)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (WebhookSettings("gitlab", "s"), "[webhooks.w] provider must be one of github, stripe, got 'gitlab'"),
        (WebhookSettings("github", "s", event="{nope.x}"), "[webhooks.w]: template '{nope.x}'"),
        (WebhookSettings("stripe", "s", tolerance=0), "[webhooks.w] tolerance must be > 0"),
    ],
)
def test_a_bad_webhook_table_is_refused_at_start_naming_it(settings: WebhookSettings, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        WebhookSource.from_settings("w", settings)
