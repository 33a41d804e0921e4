"""`helm test` for muzero: each service answers its gRPC health check with SERVING, then a
checkpoint is pulled from the learner and verified (`muzero checkpoint pull`).

The chart's test pod runs this in the muzero image. Environment:
  MUZERO_TEST_HEALTH     comma-separated HOST:PORT/HEALTH-SERVICE-NAME, one per service
  MUZERO_LEARNER_ADDR    the learner's checkpoint service, HOST:PORT
  MUZERO_TEST_TIMEOUT_S  how long services may take to become healthy (default 300)
Exit 0 when all is well; otherwise 1 and one line per failure.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from muzero.cli import main as muzero_main
from muzero.transport.grpc_util import check_health, describe


def parse_targets(text: str) -> list[tuple[str, str]]:
    targets = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        address, sep, service = item.partition("/")
        if not sep or not address or not service:
            raise SystemExit(f"helm test: MUZERO_TEST_HEALTH item {item!r}: expected HOST:PORT/SERVICE")
        targets.append((address, service))
    if not targets:
        raise SystemExit("helm test: MUZERO_TEST_HEALTH lists no service")
    return targets


def wait_serving(address: str, service: str, deadline: float) -> str:
    """SERVING, or the last status (or error) seen when the deadline passed."""
    last = "no answer"
    while True:
        try:
            last = check_health(address, service, timeout_s=5)
            if last == "SERVING":
                return last
        except Exception as error:  # not reachable yet: DNS, connection refused, deadline
            last = describe(error)
        if time.monotonic() > deadline:
            return last
        time.sleep(2)


def main() -> int:
    targets = parse_targets(os.environ.get("MUZERO_TEST_HEALTH", ""))
    learner = os.environ.get("MUZERO_LEARNER_ADDR", "")
    if not learner:
        raise SystemExit("helm test: MUZERO_LEARNER_ADDR is not set")
    deadline = time.monotonic() + float(os.environ.get("MUZERO_TEST_TIMEOUT_S", 300))
    failures = []
    for address, service in targets:
        status = wait_serving(address, service, deadline)
        print(f"{service} at {address}: {status}", flush=True)
        if status != "SERVING":
            failures.append(f"{service} at {address} is not serving ({status})")
    if not failures:
        with tempfile.TemporaryDirectory(prefix="muzero-helm-test-") as out:
            if muzero_main(["checkpoint", "pull", "--server", learner, "--out", out]) != 0:
                failures.append(f"pulling a checkpoint from {learner} failed")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
