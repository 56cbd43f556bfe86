"""Run the real Prometheus on loopback against test servers, and read its HTTP API.

The configuration is observability/prometheus.yml with only what a test must own
replaced: the targets, a 1 s scrape and evaluation pace, and the rule file, which is
observability/alert_rules.yml with every ``for`` shortened to ``FOR``. Everything is
polled with a bound: Prometheus sends no events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import signal
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.observability.tools import ALERT_RULES, PROMETHEUS_YML, tool

JOB = "switchboard"
INTERVAL = "1s"
FOR = "1s"
DEADLINE = 30.0
_POLL = 0.2

T = TypeVar("T")


def free_port() -> int:
    """A loopback port free now (Prometheus takes no port 0 it would tell us about)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def short_rules() -> dict[str, Any]:
    """alert_rules.yml with every ``for`` shortened to FOR (expressions untouched)."""
    rules: dict[str, Any] = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
    return rules


def render_config(targets: Sequence[str], rule_file: Path) -> dict[str, Any]:
    """observability/prometheus.yml scraping ``targets`` every INTERVAL, with ``rule_file``."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(
        scrape_interval=INTERVAL, scrape_timeout=INTERVAL, evaluation_interval=INTERVAL
    )
    config["rule_files"] = [str(rule_file)]
    # No Alertmanager runs here: alerts are read from Prometheus's own API.
    del config["alerting"]
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == JOB)
    job["static_configs"] = [{"targets": list(targets)}]
    config["scrape_configs"] = [job]
    return config


def _rfc3339(text: str) -> float:
    """An RFC 3339 time as Prometheus writes it (to the nanosecond) -> Unix seconds."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    whole, fraction, zone = match.groups()
    stamp = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return stamp + (float(f"0.{fraction}") if fraction else 0.0)


@dataclass
class Prometheus:
    """A running Prometheus: its API at ``url``, its files in ``workdir``."""

    process: asyncio.subprocess.Process
    url: str
    workdir: Path
    config_path: Path
    rule_path: Path

    def log(self) -> str:
        """What Prometheus logged so far (its last lines)."""
        path = self.workdir / "prometheus.log"
        return "\n".join(path.read_text().splitlines()[-40:]) if path.exists() else "(no log)"

    async def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"{self.url}/api/v1/{path}{query}"

        def fetch() -> Any:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())

        body = await asyncio.to_thread(fetch)
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (or [] for no series)."""
        data = await self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    async def value(self, expr: str) -> float | None:
        """The single value of a one-series query; None without a series."""
        result = await self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    async def alerts(self) -> list[dict[str, Any]]:
        """Every pending or firing alert."""
        data = await self.api("alerts")
        alerts: list[dict[str, Any]] = data["alerts"]
        return alerts

    async def firing(self) -> dict[str, list[dict[str, str]]]:
        """Firing alerts: name -> the label sets it fires with."""
        found: dict[str, list[dict[str, str]]] = {}
        for alert in await self.alerts():
            if alert["state"] == "firing":
                found.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return found

    async def targets_up(self) -> dict[str, str]:
        """Each active target of the switchboard job -> its health (``up``, ``down``...)."""
        data = await self.api("targets", state="active")
        return {
            target["labels"]["instance"]: target["health"]
            for target in data["activeTargets"]
            if target["labels"]["job"] == JOB
        }

    async def until(
        self,
        what: str,
        check: Callable[[], Awaitable[T | None]],
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Poll ``check`` until it returns something truthy; fail after DEADLINE.

        The failure shows ``describe()`` (what was seen last) and Prometheus's log.
        """
        last: T | None = None
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE:
            last = await check()
            if last:
                return last
            if self.process.returncode is not None:
                break
            await asyncio.sleep(_POLL)
        seen = describe() if describe is not None else repr(last)
        pytest.fail(
            f"waited {DEADLINE:.0f} s for {what}; last saw {seen}\nPrometheus log:\n{self.log()}",
            pytrace=False,
        )

    async def wait_targets(self, expected: dict[str, str]) -> None:
        """Wait until the job's targets and their health are exactly ``expected``."""

        async def reached() -> bool:
            return await self.targets_up() == expected

        await self.until(f"targets {expected}", reached)

    async def wait_evaluated(self) -> None:
        """Wait until every rule group has been evaluated after now (on data scraped by then)."""
        now = time.time()

        async def evaluated() -> bool:
            groups = (await self.api("rules"))["groups"]
            return bool(groups) and all(_rfc3339(group["lastEvaluation"]) > now for group in groups)

        await self.until("a rule evaluation after the last scrape", evaluated)

    async def rule_problems(self) -> list[tuple[str, str, str]]:
        """Rules whose last evaluation failed: (name, health, error)."""
        groups = (await self.api("rules"))["groups"]
        return [
            (rule["name"], rule["health"], rule.get("lastError", ""))
            for group in groups
            for rule in group["rules"]
            if rule["health"] != "ok"
        ]

    async def wait_firing(self, names: set[str]) -> dict[str, list[dict[str, str]]]:
        """Wait until every alert in ``names`` fires; every firing alert then."""
        seen: list[tuple[str, str]] = []

        async def fired() -> dict[str, list[dict[str, str]]] | None:
            current = await self.alerts()
            seen[:] = sorted({(alert["labels"]["alertname"], alert["state"]) for alert in current})
            firing = await self.firing()
            return firing if names <= set(firing) else None

        return await self.until(f"alerts {sorted(names)} to fire", fired, lambda: f"{seen}")

    async def wait_value(self, expr: str, accept: Callable[[float], bool]) -> float:
        """Wait until ``expr`` has one series whose value ``accept`` takes; that value."""

        async def accepted() -> float | None:
            value = await self.value(expr)
            return value if value is not None and not math.isnan(value) and accept(value) else None

        return await self.until(f"{expr} to reach the expected value", accepted)

    async def reload(self, targets: Sequence[str]) -> None:
        """Rewrite the configuration for ``targets`` and make Prometheus reload it (SIGHUP)."""
        write_config(self.config_path, targets, self.rule_path)
        self.process.send_signal(signal.SIGHUP)


def write_config(path: Path, targets: Sequence[str], rule_file: Path) -> None:
    """Write ``render_config`` to ``path``."""
    path.write_text(yaml.safe_dump(render_config(targets, rule_file), sort_keys=False))


async def _spawn(workdir: Path, config_path: Path, rule_path: Path) -> Prometheus:
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            tool("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Prometheus(process, f"http://127.0.0.1:{port}", workdir, config_path, rule_path)


async def _ready(prometheus: Prometheus) -> bool:
    """Wait until /-/ready answers 200 (True) or the process exits (False), bounded."""

    def fetch() -> bool:
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    started = time.monotonic()
    while time.monotonic() - started < DEADLINE:
        if await asyncio.to_thread(fetch):
            return True
        if prometheus.process.returncode is not None:
            return False
        await asyncio.sleep(_POLL)
    pytest.fail(f"Prometheus was not ready in {DEADLINE:.0f} s:\n{prometheus.log()}", pytrace=False)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def run_prometheus(workdir: Path, targets: Sequence[str]) -> AsyncIterator[Prometheus]:
    """Start Prometheus scraping ``targets``; yield once its API answers. Stopped on exit."""
    rule_path = workdir / "alert_rules.yml"
    rule_path.write_text(yaml.safe_dump(short_rules(), sort_keys=False))
    config_path = workdir / "prometheus.yml"
    write_config(config_path, targets, rule_path)
    # Another process may take the free port before Prometheus binds it: try another.
    for _ in range(3):
        prometheus = await _spawn(workdir, config_path, rule_path)
        try:
            if await _ready(prometheus):
                break
        except BaseException:
            await _stop(prometheus.process)
            raise
        if "address already in use" not in prometheus.log():
            pytest.fail(f"Prometheus exited at start:\n{prometheus.log()}", pytrace=False)
    else:
        pytest.fail(f"Prometheus found no free port:\n{prometheus.log()}", pytrace=False)
    try:
        yield prometheus
    finally:
        await _stop(prometheus.process)
