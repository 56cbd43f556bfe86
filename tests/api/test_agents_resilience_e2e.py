"""A misbehaving provider through the gRPC API: retries, the circuit breaker, stopping calls.

The provider is the fake OpenAI server, which fails, stalls and breaks on cue; each
test waits on what the fake or the event stream shows, never on the clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from switchboard.v1 import agents_pb2, tasks_pb2
from tests.api.agent_servers import Served, agent, of_kind, output_of, spec, states
from tests.api.conftest import Serve
from tests.api.statuses import detail, failure
from tests.fakes import FakeOpenAI, text
from tests.fakes import failure as http_failure

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
PROVIDERS = ["openai:gpt-test", "compat:llama-3"]
# Held after four events, a streamed answer in three parts has sent its first delta
# in either wire format, and nothing that ends it.
STALL_AFTER = 4


def _reason(status: status_pb2.Status) -> str:
    return detail(status, error_details_pb2.ErrorInfo).reason


def _logs(events: list[tasks_pb2.TaskEvent]) -> list[str]:
    return [log.message for log in of_kind(events, "log")]


async def _provider(serve: Serve, fake: FakeOpenAI, model: str, **fields: Any) -> Served:
    return await serve(agent("flaky", model, base_url=fake.base_url, **fields))


# -- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", PROVIDERS)
@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_transient_failure_is_retried_and_the_task_succeeds(
    fake: FakeOpenAI, serve: Serve, model: str, status: int
) -> None:
    served = await _provider(serve, fake, model)
    fake.script(http_failure(status), text("second time lucky", input_tokens=8, output_tokens=3))

    task = await served.execute("try")

    assert task.state == tasks_pb2.TASK_STATE_SUCCEEDED
    assert task.output_text == "second time lucky"
    assert task.attempts == 2
    assert not task.HasField("error")
    assert task.usage.total_tokens == 11
    assert len(fake.requests) == 2
    events = await served.events(task.id)
    retried, started = _logs(events)
    assert retried.startswith("attempt 1 failed (")
    assert f"Error code: {status}" in retried
    assert "retrying in" in retried
    assert started == "attempt 2 started"
    assert [log.level for log in of_kind(events, "log")] == ["warning", "info"]
    assert output_of(events) == task.output_text
    assert (await served.agent("flaky")).circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED


@pytest.mark.parametrize("model", PROVIDERS)
async def test_a_stream_broken_midway_is_retried(
    fake: FakeOpenAI, serve: Serve, model: str
) -> None:
    served = await _provider(serve, fake, model)
    fake.script(text("lost", parts=1).broken(after=1), text("whole answer"))

    task = await served.execute("try")

    assert (task.state, task.attempts) == (tasks_pb2.TASK_STATE_SUCCEEDED, 2)
    assert task.output_text == "whole answer"
    events = await served.events(task.id)
    assert "attempt 1 failed (APIConnectionError" in _logs(events)[0]
    # Whatever the broken attempt streamed is marked attempt 1; the output is attempt 2's.
    attempts = [d.attempt for d in of_kind(events, "output_delta")]
    assert attempts == sorted(attempts)
    assert attempts[-1] == 2
    assert output_of(events) == task.output_text


@pytest.mark.parametrize("model", PROVIDERS)
async def test_a_failure_that_outlasts_the_retries_fails_the_task_unavailable(
    fake: FakeOpenAI, serve: Serve, model: str
) -> None:
    served = await _provider(serve, fake, model)
    fake.script(*[http_failure(500, "the model is on fire")] * 3)

    task = await served.execute("try")

    assert task.state == tasks_pb2.TASK_STATE_FAILED
    assert task.attempts == 3
    assert task.error.code == UNAVAILABLE
    assert _reason(task.error) == "MODEL_ERROR"
    assert "the model is on fire" in task.error.message
    assert len(fake.requests) == 3
    events = await served.events(task.id)
    assert [m.split(" (")[0] for m in _logs(events)] == [
        "attempt 1 failed",
        "attempt 2 started",
        "attempt 2 failed",
        "attempt 3 started",
    ]
    assert events[-1].state_changed.error == task.error
    flaky = await served.agent("flaky")
    assert list(flaky.outcomes) == [
        agents_pb2.OutcomeCount(state=tasks_pb2.TASK_STATE_FAILED, count=1)
    ]
    assert "the model is on fire" in flaky.last_error
    assert flaky.HasField("last_error_time")


@pytest.mark.parametrize("model", PROVIDERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_refused_request_fails_at_once_without_retries(
    fake: FakeOpenAI, serve: Serve, model: str, status: int
) -> None:
    served = await _provider(serve, fake, model, breaker={"failure_threshold": 1})
    fake.script(http_failure(status, "not with that key"))

    task = await served.execute("try")

    assert task.state == tasks_pb2.TASK_STATE_FAILED
    assert task.attempts == 1
    assert task.error.code == FAILED_PRECONDITION
    assert _reason(task.error) == "MODEL_ERROR"
    assert "not with that key" in task.error.message
    assert len(fake.requests) == 1
    assert _logs(await served.events(task.id)) == []
    # A request refused as invalid says nothing about the provider's health.
    flaky = await served.agent("flaky")
    assert flaky.circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED


# -- circuit breaker ---------------------------------------------------------------------


async def test_an_open_breaker_refuses_tasks_without_calling_the_provider(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(
        agent(
            "flaky",
            "openai:gpt-test",
            base_url=fake.base_url,
            retry={"attempts": 1},
            breaker={"failure_threshold": 2, "reset_timeout": timedelta(seconds=300)},
        ),
        agent("steady"),
    )
    fake.script(http_failure(500), http_failure(502))

    failed = [await served.execute("try", agent="flaky") for _ in range(2)]
    assert [task.state for task in failed] == [tasks_pb2.TASK_STATE_FAILED] * 2

    call = served.tasks.Execute(tasks_pb2.ExecuteRequest(task=spec("try", agent="flaky")))
    _, status = await failure(call)

    assert await call.code() == grpc.StatusCode.UNAVAILABLE
    assert _reason(status) == "CIRCUIT_OPEN"
    assert "flaky" in status.message
    delay = detail(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta()
    assert timedelta(0) < delay <= timedelta(seconds=300)
    assert len(fake.requests) == 2
    assert len(await served.stored()) == 2  # the refused task was never made
    submit = served.tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=spec("x", agent="flaky")))
    _, status = await failure(submit)
    assert _reason(status) == "CIRCUIT_OPEN"

    flaky = await served.agent("flaky")
    assert flaky.health == agents_pb2.AGENT_HEALTH_UNHEALTHY
    assert flaky.circuit_state == agents_pb2.CIRCUIT_STATE_OPEN
    listed = (await served.agents.ListAgents(agents_pb2.ListAgentsRequest())).agents
    assert [(a.id, a.health, a.circuit_state) for a in listed] == [
        ("flaky", agents_pb2.AGENT_HEALTH_UNHEALTHY, agents_pb2.CIRCUIT_STATE_OPEN),
        ("steady", agents_pb2.AGENT_HEALTH_HEALTHY, agents_pb2.CIRCUIT_STATE_CLOSED),
    ]
    # Other agents run on.
    assert (await served.execute("hi", agent="steady")).state == tasks_pb2.TASK_STATE_SUCCEEDED


async def test_a_queued_task_fails_fast_once_the_breaker_opens(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(
        agent(
            "flaky",
            "openai:gpt-test",
            base_url=fake.base_url,
            max_concurrency=1,
            retry={"attempts": 1},
            breaker={"failure_threshold": 1},
        )
    )
    release = asyncio.Event()
    # Stalls after its first delta until released, then the connection is cut.
    fake.script(text("never finished", parts=3).held(STALL_AFTER, release).broken(STALL_AFTER + 1))
    first = (await served.tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=spec("a")))).task
    (await _until_first_delta(served, first.id)).cancel()
    second = (await served.tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=spec("b")))).task
    assert (await served.agent("flaky")).queued == 1

    release.set()
    events = await served.events(second.id)

    ended = events[-1].state_changed
    assert ended.state == tasks_pb2.TASK_STATE_FAILED
    assert (ended.error.code, _reason(ended.error)) == (UNAVAILABLE, "CIRCUIT_OPEN")
    assert of_kind(events, "output_delta") == []
    assert len(fake.requests) == 1
    first_end = (await served.events(first.id))[-1].state_changed
    assert _reason(first_end.error) == "MODEL_UNAVAILABLE"


async def test_a_task_that_exhausts_its_retries_counts_once_towards_the_breaker(
    fake: FakeOpenAI, serve: Serve
) -> None:
    """The breaker opens after ``failure_threshold`` consecutive failed *tasks*.

    ``BreakerConfig.failure_threshold`` says so; a task's own retries must not trip the
    breaker halfway through the task and end it CIRCUIT_OPEN.
    """
    served = await serve(
        agent(
            "flaky",
            "openai:gpt-test",
            base_url=fake.base_url,
            breaker={"failure_threshold": 2, "reset_timeout": timedelta(seconds=300)},
        )
    )
    fake.script(*[http_failure(500)] * 3)

    task = await served.execute("try")

    assert task.state == tasks_pb2.TASK_STATE_FAILED
    assert (task.attempts, len(fake.requests)) == (3, 3)
    assert _reason(task.error) == "MODEL_ERROR"
    assert (await served.agent("flaky")).circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED


# -- cancellation and timeouts close the provider's stream -------------------------------


async def _until_first_delta(served: Served, task_id: str) -> grpc.aio.UnaryStreamCall:
    """A WatchTask call on ``task_id``, read up to the first output delta."""
    call = served.tasks.WatchTask(tasks_pb2.WatchTaskRequest(task_id=task_id))
    async for response in call:  # iterating the call again resumes where this stopped
        if response.event.WhichOneof("payload") == "output_delta":
            return call
    raise AssertionError("the task ended without any output")


@pytest.mark.parametrize("model", PROVIDERS)
async def test_cancelling_a_task_midstream_closes_the_provider_stream(
    fake: FakeOpenAI, serve: Serve, model: str
) -> None:
    served = await _provider(serve, fake, model)
    fake.script(text("Hello there, world", parts=3).held(STALL_AFTER))
    task = (await served.tasks.SubmitTask(tasks_pb2.SubmitTaskRequest(task=spec("hi")))).task
    watch = await _until_first_delta(served, task.id)

    cancelled = (await served.tasks.CancelTask(tasks_pb2.CancelTaskRequest(task_id=task.id))).task

    await fake.wait_disconnect()
    assert cancelled.state == tasks_pb2.TASK_STATE_CANCELLED
    assert _reason(cancelled.error) == "TASK_CANCELLED"
    assert cancelled.attempts == 1
    rest = [response.event async for response in watch]
    assert states(rest) == [tasks_pb2.TASK_STATE_CANCELLED]
    assert len(fake.requests) == 1
    # Cancelling says nothing about the provider.
    assert (await served.agent("flaky")).circuit_state == agents_pb2.CIRCUIT_STATE_CLOSED


@pytest.mark.parametrize("model", PROVIDERS)
async def test_a_task_timeout_midstream_closes_the_provider_stream(
    fake: FakeOpenAI, serve: Serve, model: str
) -> None:
    served = await _provider(serve, fake, model)
    fake.script(text("Hello there, world", parts=3).held(STALL_AFTER))

    task = await served.execute("hi", timeout=1)

    await fake.wait_disconnect()
    assert task.state == tasks_pb2.TASK_STATE_TIMED_OUT
    assert _reason(task.error) == "TASK_TIMED_OUT"
    assert task.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert len(fake.requests) == 1  # not retried past its deadline
    assert states(await served.events(task.id))[-1] == tasks_pb2.TASK_STATE_TIMED_OUT


async def test_an_execute_deadline_midstream_closes_the_provider_stream(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await _provider(serve, fake, "openai:gpt-test")
    fake.script(text("Hello there, world", parts=3).held(STALL_AFTER))

    response = await served.tasks.Execute(tasks_pb2.ExecuteRequest(task=spec("hi")), timeout=1.5)

    await fake.wait_disconnect()
    assert response.task.state == tasks_pb2.TASK_STATE_TIMED_OUT
    assert _reason(response.task.error) == "TASK_TIMED_OUT"
    assert len(fake.requests) == 1


async def test_an_execute_caller_going_away_closes_the_provider_stream(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await _provider(serve, fake, "compat:llama-3")
    fake.script(text("Hello there, world", parts=3).held(STALL_AFTER))
    call = served.tasks.Execute(tasks_pb2.ExecuteRequest(task=spec("hi")))
    await fake.wait_connections(1)  # the task is stored and running
    [task] = await served.stored()
    await _until_first_delta(served, task.id)

    call.cancel()

    await fake.wait_disconnect()
    events = await served.events(task.id)
    assert states(events)[-1] == tasks_pb2.TASK_STATE_CANCELLED
    assert "caller went away" in events[-1].state_changed.reason
