"""The result cache through the gRPC API: hits skip the provider, yet stream every event.

The provider is the fake OpenAI server, scripted with exactly the replies a test
expects to be asked for: a request the cache should have answered gets ``400 no
scripted reply`` and fails the test loudly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from switchboard.client import AsyncClient
from switchboard.v1 import tasks_pb2
from tests.api.agent_servers import agent, function_tool, of_kind, output_of, states
from tests.api.conftest import Serve
from tests.fakes import FakeOpenAI, failure, text

SUCCEEDED = tasks_pb2.TASK_STATE_SUCCEEDED
CACHE_LOG = "served from the result cache; the model was not called"


def _kinds(events: list[tasks_pb2.TaskEvent]) -> list[str | None]:
    return [event.WhichOneof("payload") for event in events]


async def test_the_same_request_again_is_served_from_the_cache_with_its_events(
    fake: FakeOpenAI, serve: Serve
) -> None:
    served = await serve(agent("cloud", "openai:gpt-test", base_url=fake.base_url))
    fake.script(text("Hello there, world", parts=3, input_tokens=21, output_tokens=4))

    first = await served.execute("Say hello")
    second = await served.execute("Say hello")

    assert len(fake.requests) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.id != first.id
    assert (second.state, second.output_text, second.agent) == (
        SUCCEEDED,
        "Hello there, world",
        "cloud",
    )
    assert second.attempts == 1
    assert first.usage.total_tokens == 25
    assert second.usage == tasks_pb2.TokenUsage()  # a cached answer costs no tokens
    events = await served.events(second.id)
    assert [d.text for d in of_kind(events, "output_delta")] == ["Hello ", "there,", " world"]
    assert output_of(events) == second.output_text
    assert [log.message for log in of_kind(events, "log")] == [CACHE_LOG]
    assert of_kind(events, "usage") == []
    assert states(events) == [tasks_pb2.TASK_STATE_QUEUED, tasks_pb2.TASK_STATE_RUNNING, SUCCEEDED]
    assert events[-1].state_changed.state == SUCCEEDED
    assert (await served.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=second.id))).task.cached
    cloud = await served.agent("cloud")
    assert cloud.usage == first.usage
    assert cloud.outcomes[0].count == 2


async def test_no_cache_neither_reads_nor_writes_the_cache(fake: FakeOpenAI, serve: Serve) -> None:
    served = await serve(agent("cloud", "openai:gpt-test", base_url=fake.base_url))
    fake.script(text("cached"), text("fresh"), text("not kept"), text("kept"))
    async with AsyncClient(served.server.address) as client:
        await client.execute("question")
        bypassed = await client.execute("question", no_cache=True)
        unkept = await client.execute("another question", no_cache=True)
        after_unkept = await client.execute("another question")

    assert len(fake.requests) == 4
    assert (bypassed.cached, bypassed.output_text) == (False, "fresh")
    assert bypassed.spec.no_cache
    assert (unkept.output_text, after_unkept.output_text) == ("not kept", "kept")
    assert not after_unkept.cached


async def test_what_decides_the_answer_is_in_the_key(fake: FakeOpenAI, serve: Serve) -> None:
    served = await serve(
        agent("cloud", "openai:gpt-test", base_url=fake.base_url, tools=["calculator"]),
        agent("other", "openai:gpt-test", base_url=fake.base_url),
    )
    fake.script(*[text(f"answer {n}") for n in range(5)])

    variants = [
        await served.execute("q"),
        await served.execute("q2"),
        await served.execute("q", instructions="be brief"),
        await served.execute("q", tools=[function_tool("calculator")]),
        await served.execute("q", agent="other"),
    ]
    again = await served.execute("q", instructions="be brief")

    assert len(fake.requests) == 5
    assert not any(task.cached for task in variants)
    assert (again.cached, again.output_text) == (True, "answer 2")


async def test_a_failed_task_is_not_cached(fake: FakeOpenAI, serve: Serve) -> None:
    served = await serve(agent("cloud", "openai:gpt-test", base_url=fake.base_url))
    fake.script(failure(400), text("now it works"))

    failed = await served.execute("q")
    succeeded = await served.execute("q")

    assert failed.state == tasks_pb2.TASK_STATE_FAILED
    assert (succeeded.state, succeeded.cached) == (SUCCEEDED, False)
    assert len(fake.requests) == 2


async def test_an_agent_with_a_zero_ttl_is_never_cached(fake: FakeOpenAI, serve: Serve) -> None:
    served = await serve(
        agent("cloud", "openai:gpt-test", base_url=fake.base_url, cache_ttl=timedelta(0))
    )
    fake.script(text("one"), text("two"))

    tasks = [await served.execute("q"), await served.execute("q")]

    assert [(t.output_text, t.cached) for t in tasks] == [("one", False), ("two", False)]


async def test_a_cached_run_replays_its_handoff(serve: Serve) -> None:
    served = await serve(agent("front", handoffs=["maths"]), agent("maths"))
    first = await served.execute("/handoff maths")
    second = await served.execute("/handoff maths")

    assert second.cached
    assert second.agent == first.agent == "maths"
    assert second.output_text == first.output_text
    ran, replayed = await served.events(first.id), await served.events(second.id)
    # The same story, without the usage (no tokens were spent) and with a word on why.
    assert [k for k in _kinds(replayed) if k != "log"] == [k for k in _kinds(ran) if k != "usage"]
    for kind in ("agent_changed", "output_delta"):
        assert of_kind(replayed, kind) == of_kind(ran, kind)


async def test_a_run_that_called_tools_is_not_reused(serve: Serve) -> None:
    """Tools may depend on the moment or change things: their runs are not cached."""
    served = await serve(agent("maths", tools=["calculator", "current_time"]))
    question = '/tool calculator {"expression": "6 * 7"}'
    first, second = await served.execute(question), await served.execute(question)
    assert (first.cached, second.cached) == (False, False)
    assert len(of_kind(await served.events(second.id), "tool_call")) == 1


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_servers_sharing_a_redis_share_their_results(
    fake: FakeOpenAI, serve: Serve, redis_url: str, redis_prefix: str, redis: Redis
) -> None:
    """One replica's answer serves another's task: the cache lives in Redis."""
    cloud = agent(
        "cloud", "openai:gpt-test", base_url=fake.base_url, cache_ttl=timedelta(minutes=5)
    )
    fake.script(text("42", parts=2))
    one = await serve(cloud, redis_url=redis_url, redis_prefix=redis_prefix)
    two = await serve(cloud, redis_url=redis_url, redis_prefix=redis_prefix)

    first = await one.execute("What is the answer?")
    (key,) = [key async for key in redis.scan_iter(match=f"{redis_prefix}result:*")]
    assert 0 < await redis.pttl(key) <= 5 * 60 * 1000
    second = await two.execute("What is the answer?")

    assert len(fake.requests) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.output_text == "42"
    events = await two.events(second.id)
    assert [d.text for d in of_kind(events, "output_delta")] == ["4", "2"]
    assert events[-1].state_changed.state == SUCCEEDED


async def test_a_redis_that_is_down_means_no_cache_not_failed_tasks(
    fake: FakeOpenAI, serve: Serve
) -> None:
    # Port 9 (discard) has nothing listening on loopback: every command fails.
    served = await serve(
        agent("cloud", "openai:gpt-test", base_url=fake.base_url),
        redis_url="redis://127.0.0.1:9/0",
    )
    fake.script(text("one"), text("two"))

    tasks = [await served.execute("q"), await served.execute("q")]

    assert [(t.state, t.output_text, t.cached) for t in tasks] == [
        (SUCCEEDED, "one", False),
        (SUCCEEDED, "two", False),
    ]
