"""``python -m tests.chaos`` (``make chaos``): one chaos session, its table, exit 1 on any problem."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import anyio

from tests.chaos.run import SCENARIOS, Plan, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="all")
    parser.add_argument("--events", type=int, help="events to publish (all: 10000, storm: 1500, short: 300)")
    parser.add_argument("--rate", type=float, help="events published per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="where the logs and records go (default: a temp dir)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    plan = SCENARIOS[options.scenario]
    overrides = {"events": options.events, "rate": options.rate}
    plan = Plan(
        **{**plan.__dict__, **{k: v for k, v in overrides.items() if v is not None}, "seed": options.seed}
    )
    verdict = anyio.run(run, plan, options.folder)
    print(verdict.table())
    print("chaos: " + ("passed" if verdict.ok else "FAILED"))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
