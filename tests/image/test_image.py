"""The image of deploy/Dockerfile does what docs/image.md promises.

Lint, metadata, then containers on the host's network with a read-only root and a
named volume for the data: the image's own HEALTHCHECK reports SERVING, grpcurl runs a
task through reflection, /metrics answers, the server is PID 1 as uid 1001, and
SIGTERM drains it to a clean exit whose data the next container finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeOpenAI, text

from .podman import (
    DATA_DIR,
    REPO_ROOT,
    Container,
    Podman,
    fail,
    free_ports,
    log_records,
    messages,
)

pytestmark = pytest.mark.timeout(300)  # two or three container starts each, on a slow machine

VENV_BIN = Path(sys.executable).parent
UID = "1001"
# What SIGTERM must log, in this order (server/app.py): the drain, step by step.
DRAIN_LOG = (
    "received SIGTERM: shutting down",
    "shutdown: health reports NOT_SERVING",
    "shutdown: refusing new calls",
    "shutdown: closing the store",
    "shutdown: done",
)
# Well above the drain, which the grace period bounds: SIGKILL must never be needed.
STOP_TIMEOUT = 60
GRACE_PERIOD = 10


def _run(*argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        fail(
            f"{' '.join(map(str, argv))} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return done


def _grpcurl(address: str, method: str, request: dict[str, Any]) -> dict[str, Any]:
    """One unary call with the real grpcurl, which learns the API by reflection only."""
    done = _run(*_grpcurl_argv(address, method, request))
    response: dict[str, Any] = json.loads(done.stdout)
    return response


def _grpcurl_argv(address: str, method: str, request: dict[str, Any]) -> list[str]:
    return [
        str(VENV_BIN / "grpcurl"),
        "-plaintext",
        "-max-time",
        "60",
        "-d",
        json.dumps(request),
        address,
        method,
    ]


def _execute(address: str, words: str) -> dict[str, Any]:
    response = _grpcurl(address, "switchboard.v1.TaskService/Execute", {"task": {"input": words}})
    task: dict[str, Any] = response["task"]
    return task


@pytest.fixture(scope="module")
def server(podman: Podman, image: str, measured: dict[str, str]) -> Iterator[Container]:
    """One running container of the image, shared by the read-only checks below."""
    volume = f"switchboard-image-test-{uuid.uuid4().hex[:10]}"
    podman.run("volume", "create", volume)
    container = Container(podman, image, volume)
    try:
        container.start().wait_serving()
        measured["start to SERVING (first start, migrates)"] = (
            f"{container.seconds_to_serving:.2f} s"
        )
        yield container
    finally:
        container.remove()
        podman.run("volume", "rm", "--force", volume, check=False)


def test_dockerfile_passes_hadolint() -> None:
    _run(VENV_BIN / "hadolint", "deploy/Dockerfile")


def test_image_scripts_pass_shellcheck() -> None:
    _run("shellcheck", "scripts/build-base-image.sh", "scripts/image-check.sh")


def test_image_metadata(podman: Podman, image: str, project_version: str) -> None:
    found = podman.inspect("image", image)
    config = found["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert set(config["ExposedPorts"]) == {"50051/tcp", "9464/tcp"}
    assert set(config["Volumes"]) == {DATA_DIR}
    # Exec form: the server itself is PID 1 and gets SIGTERM, no shell in between.
    assert config["Entrypoint"] == ["switchboard"]
    assert config["Cmd"] == ["serve"]
    assert config["StopSignal"] == "SIGTERM"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # No settings: variables would outrank the operator's YAML file. The default store
    # (a relative SQLite file) lands in the working directory, the data volume.
    assert not [name for name in env if name.startswith("SWITCHBOARD_")]
    assert config["WorkingDir"] == DATA_DIR
    # Kept only by the docker format (podman build --format docker).
    assert found["Healthcheck"]["Test"] == ["CMD", "switchboard", "health", "--timeout", "3"]

    labels = config["Labels"]
    oci = "org.opencontainers.image."
    for name in ("title", "description", "source", "version", "revision", "created", "licenses"):
        assert labels.get(oci + name), f"label {oci}{name} is missing or empty"
    assert labels[oci + "title"] == "switchboard"
    assert labels[oci + "version"] == project_version
    assert labels[oci + "licenses"] == "Apache-2.0"
    datetime.fromisoformat(labels[oci + "created"])


def test_runtime_has_the_locked_versions_and_no_pip(
    podman: Podman, image: str, project_version: str
) -> None:
    lock = (REPO_ROOT / "deploy" / "requirements.lock").read_text()
    locked = {
        name.lower().replace("_", "-"): version
        for name, _, version in (line.partition("==") for line in lock.splitlines() if "==" in line)
    }
    listing = podman.run(
        "run",
        "--rm",
        "--network=none",
        "--read-only",
        "--entrypoint=python",
        image,
        "-c",
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
    ).stdout
    installed = {
        name.lower().replace("_", "-"): version
        for name, version in json.loads(listing.strip().splitlines()[-1]).items()
    }
    assert installed.pop("switchboard") == project_version
    assert installed == locked  # exactly the lock: nothing more (no pip), nothing less


def test_refuses_a_wildcard_address_without_an_auth_choice(podman: Podman, image: str) -> None:
    grpc_port, metrics_port = free_ports(2)
    done = podman.run(
        "run",
        "--rm",
        "--network=host",
        "--read-only",
        f"--env=SWITCHBOARD_ADDRESS=[::]:{grpc_port}",
        f"--env=SWITCHBOARD_METRICS_ADDRESS=[::]:{metrics_port}",
        image,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"refusing to serve [::]:{grpc_port} without authentication" in output
    assert "SWITCHBOARD_AUTH__ALLOW_UNAUTHENTICATED" in output


def test_health_check_reports_serving(server: Container) -> None:
    # The image's HEALTHCHECK (liveness) passed to get here; readiness too:
    liveness = server.podman.run("healthcheck", "run", server.name)
    assert liveness.returncode == 0
    for service in ("", "switchboard.v1.TaskService", "switchboard.v1.AgentService"):
        done = server.exec("switchboard", "health", "--service", service)
        assert done.stdout.strip() == "SERVING"


def test_execute_through_grpcurl(server: Container) -> None:
    task = _execute(server.address, "hello from the image")
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["output_text"]
    assert task["spec"]["input"] == "hello from the image"


def test_metrics_answer_over_http(server: Container) -> None:
    _execute(server.address, "count me")
    base = f"http://127.0.0.1:{server.metrics_port}"
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    handled = {
        (sample.labels["grpc_method"], sample.labels["grpc_code"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "grpc_server_handled"
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
    }
    assert handled[("Execute", "OK")] >= 1
    for probe in ("healthz", "readyz"):
        with urllib.request.urlopen(f"{base}/{probe}", timeout=10) as response:
            assert response.status == 200


def test_server_is_pid_1_as_uid_1001(server: Container) -> None:
    status = dict(
        line.split(":", 1) for line in server.exec("cat", "/proc/1/status").stdout.splitlines()
    )
    assert status["Uid"].split() == [UID] * 4
    assert status["Gid"].split() == [UID] * 4
    argv = server.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert argv[1:3] == ["/opt/switchboard/bin/switchboard", "serve"]


def test_writes_only_the_data_volume(server: Container) -> None:
    assert server.podman.inspect("container", server.name)["HostConfig"]["ReadonlyRootfs"]
    refused = server.exec("touch", "/opt/switchboard/probe", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    files = server.exec("ls", DATA_DIR).stdout.split()
    assert "switchboard.db" in files


def test_sigterm_drains_and_the_data_survives_a_restart(
    podman: Podman, image: str, volume: str, measured: dict[str, str]
) -> None:
    env = {"SWITCHBOARD_SERVER__GRACE_PERIOD": str(GRACE_PERIOD)}
    first = Container(podman, image, volume, env)
    try:
        first.start().wait_serving()
        task = _execute(first.address, "remember me")
        seconds = first.stop(STOP_TIMEOUT)
        state = first.state()
        log = first.logs()
    finally:
        first.remove()
    # Exit code 0: the server ended by itself, not by the SIGKILL after the timeout (137).
    assert state["ExitCode"] == 0, log
    assert not state["OOMKilled"]
    records = log_records(log)
    said = messages(records)
    positions = [
        next((i for i, message in enumerate(said) if message.startswith(step)), -1)
        for step in DRAIN_LOG
    ]
    assert -1 not in positions, f"missing drain steps {DRAIN_LOG}:\n{log}"
    assert positions == sorted(positions), log
    signalled = datetime.fromisoformat(records[positions[0]]["time"])
    done = datetime.fromisoformat(records[positions[-1]]["time"])
    measured["drain (SIGTERM to 'shutdown: done', from the log)"] = (
        f"{(done - signalled).total_seconds():.3f} s"
    )
    measured["podman stop (SIGTERM to exited)"] = f"{seconds:.2f} s"

    second = Container(podman, image, volume, env)
    try:
        second.start().wait_serving()
        measured["start to SERVING (restart, migrated store)"] = (
            f"{second.seconds_to_serving:.2f} s"
        )
        found = _grpcurl(
            second.address, "switchboard.v1.TaskService/GetTask", {"task_id": task["id"]}
        )["task"]
    finally:
        second.remove()
    assert found["state"] == "TASK_STATE_SUCCEEDED"
    assert found["output_text"] == task["output_text"]


@contextlib.contextmanager
def _fake_openai_thread() -> Iterator[tuple[FakeOpenAI, asyncio.AbstractEventLoop]]:
    """The fake OpenAI server on loopback, served by a loop in a thread of its own.

    The tests here block on podman; the fake must keep answering meanwhile.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
    thread.start()
    fake = FakeOpenAI()
    try:
        asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(10)
        try:
            yield fake, loop
        finally:
            asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_sigterm_lets_an_in_flight_call_finish(
    podman: Podman, image: str, volume: str, tmp_path: Path, measured: dict[str, str]
) -> None:
    release = asyncio.Event()
    with _fake_openai_thread() as (fake, loop):
        # An agent whose model answers half, then holds the rest until the test says so.
        fake.script(text("drained in time", parts=2).held(after=1, until=release))
        config = tmp_path / "switchboard.yaml"
        config.write_text(
            json.dumps(
                {
                    "default_agent": "remote",
                    "agents": [
                        {"name": "remote", "model": "compat:fake", "base_url": fake.base_url}
                    ],
                }
            )
        )
        config.chmod(0o644)
        container = Container(
            podman,
            image,
            volume,
            env={
                "SWITCHBOARD_CONFIG": "/etc/switchboard/switchboard.yaml",
                "SWITCHBOARD_SERVER__GRACE_PERIOD": str(GRACE_PERIOD),
            },
            mounts=[f"{config}:/etc/switchboard/switchboard.yaml:ro"],
        )
        try:
            container.start().wait_serving()
            call = subprocess.Popen(
                _grpcurl_argv(
                    container.address,
                    "switchboard.v1.TaskService/Execute",
                    {"task": {"input": "finish me"}},
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            try:
                _wait_model_request(fake, call)
                podman.run("kill", "--signal=TERM", container.name)
                container.wait_logged("shutdown: refusing new calls")
                # Draining: new calls are refused (the health check fails), ours goes on.
                assert container.exec("switchboard", "health", check=False).returncode == 1
                assert call.poll() is None
                loop.call_soon_threadsafe(release.set)
                stdout, stderr = call.communicate(timeout=60)
            finally:
                if call.poll() is None:
                    call.kill()
                    call.communicate()
            exit_code = container.wait_exit(within=STOP_TIMEOUT)
            log = container.logs()
        finally:
            container.remove()
    assert call.returncode == 0, stderr
    task = json.loads(stdout)["task"]
    assert task["state"] == "TASK_STATE_SUCCEEDED"
    assert task["output_text"] == "drained in time"
    assert exit_code == 0, log
    records = log_records(log)
    said = messages(records)
    assert [step for step in DRAIN_LOG if any(m.startswith(step) for m in said)] == list(DRAIN_LOG)
    [answered] = [r for r in records if r.get("method") == "/switchboard.v1.TaskService/Execute"]
    [done] = [r for r in records if r.get("message") == "shutdown: done"]
    seconds = datetime.fromisoformat(done["time"]) - datetime.fromisoformat(answered["time"])
    measured["in-flight Execute answered to 'shutdown: done' (log)"] = (
        f"{seconds.total_seconds():.3f} s"
    )


def _wait_model_request(fake: FakeOpenAI, call: subprocess.Popen[str]) -> None:
    """Poll until the server's call reached the model (bounded); fail if grpcurl ended."""
    deadline = time.monotonic() + 30
    while not fake.requests:
        if call.poll() is not None:
            fail(f"the call ended before reaching the model: {call.communicate()}")
        if time.monotonic() > deadline:
            fail("the server never called the model")
        time.sleep(0.05)
