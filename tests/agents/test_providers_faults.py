"""How providers fail: what the real SDK model classes raise, and that streams get closed.

Clients never retry (the orchestrator does): every failure here costs one request.
"""

from __future__ import annotations

import asyncio
import contextlib

import openai
import pytest
from agents import ModelSettings, ModelTimeoutError
from agents.stream_events import RawResponsesStreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from tests.fakes import FakeOpenAI, failure, text
from tests.fakes.sdk_runs import provider_on, start, stream

PROVIDERS = ["openai", "compat"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
    ],
)
async def test_an_http_error_raises_its_status_error_after_one_request(
    provider: str, status: int, error: type[openai.APIStatusError], monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = failure(status, "nope", retry_after=7)
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        with pytest.raises(error) as raised:
            await stream(handle)

    assert raised.value.status_code == status
    assert raised.value.response.headers["retry-after"] == "7"
    assert "nope" in str(raised.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refused_connection_raises_a_connection_error(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeOpenAI() as fake:
        pass  # stopped: its port now refuses connections
    async with provider_on(fake, provider, monkeypatch) as handle:
        with pytest.raises(openai.APIConnectionError) as raised:
            await stream(handle)

    assert not isinstance(raised.value, openai.APITimeoutError)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_cut_midway_raises_a_connection_error(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = text("Hello there, world", parts=3).broken(after=4)
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        with pytest.raises(openai.APIConnectionError) as raised:
            await stream(handle)

    assert not isinstance(raised.value, openai.APITimeoutError)
    assert len(fake.requests) == 1
    assert fake.disconnects == 0  # the server left, not the client


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stalled_stream_times_out_on_the_client_timeout_and_is_closed(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = text("Hello there, world", parts=3).held(after=4)
    async with (
        FakeOpenAI(reply) as fake,
        provider_on(fake, provider, monkeypatch, timeout=0.2) as handle,
    ):
        with pytest.raises(openai.APITimeoutError):
            await stream(handle)
        await fake.wait_disconnect()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stalled_stream_times_out_on_the_model_timeout_and_is_closed(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = text("Hello there, world", parts=3).held(after=4)
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        with pytest.raises(ModelTimeoutError):
            await stream(handle, settings=ModelSettings(timeout=0.2))
        await fake.wait_disconnect()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cancelling_a_run_midstream_closes_its_http_stream(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = text("Hello there, world", parts=3).held(after=4)  # first delta out, then stall
    async with FakeOpenAI(reply) as fake, provider_on(fake, provider, monkeypatch) as handle:
        result = start(handle)
        first_delta = asyncio.Event()

        async def consume() -> None:
            async for event in result.stream_events():
                if isinstance(event, RawResponsesStreamEvent) and isinstance(
                    event.data, ResponseTextDeltaEvent
                ):
                    first_delta.set()

        consumer = asyncio.create_task(consume())
        await first_delta.wait()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        result.cancel()

        await fake.wait_disconnect()
        assert fake.disconnects == 1
