"""The deployment files agree with the code: names, settings, queues and ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from legato.broker.base import Topology
from legato.config import _SECTIONS, _TOP

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return found


def test_every_manifest_parses_and_kustomize_lists_them_all() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert all("kind" in d and "metadata" in d for d in documents())


def test_settings_in_the_config_map_and_secret_are_real_legato_settings() -> None:
    known = set(_TOP.values()) | {var for section in _SECTIONS.values() for var in section.values()}
    known.add("LEGATO_LOG_LEVEL")
    for doc in documents():
        if doc["kind"] in ("ConfigMap", "Secret"):
            keys = set(doc.get("data", {})) | set(doc.get("stringData", {}))
            assert keys <= known, keys - known


def test_keda_scales_on_the_queues_legato_declares() -> None:
    topology = Topology("legato")  # an app not given a name: "default"
    scaled = next(d for d in documents() if d["kind"] == "ScaledObject")
    queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"]}
    assert queues == {*topology.task_queues, topology.app_queue}
    assert scaled["spec"]["scaleTargetRef"]["name"] == "legato-worker"


def test_the_worker_stops_within_the_pods_grace_period() -> None:
    config = next(d for d in documents() if d["kind"] == "ConfigMap")
    worker = next(
        d for d in documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "legato-worker"
    )
    pod = worker["spec"]["template"]["spec"]
    assert float(config["data"]["LEGATO_GRACE"]) < pod["terminationGracePeriodSeconds"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_the_image_runs_the_worker_and_stops_on_sigterm() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["legato"]' in dockerfile
    assert "STOPSIGNAL SIGTERM" in dockerfile
    assert "USER legato" in dockerfile


def test_container_commands_and_options_exist_in_the_cli() -> None:
    import click

    from legato.cli.main import cli

    for doc in documents():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            name, *rest = container["args"]
            command = cli.get_command(click.Context(cli), name)
            assert command is not None, name
            options = {
                opt for param in command.params if isinstance(param, click.Option) for opt in param.opts
            }
            given = {arg for arg in rest if arg.startswith("--")}
            assert given <= options, (doc["metadata"]["name"], given - options)
