"""http_fetch against a real HTTP server on loopback: the allow-list, redirects, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from switchboard.server.agents.tools.http_fetch import MAX_REDIRECTS, AllowList, http_fetch_tool
from switchboard.server.config import ToolsConfig

PAGE = "hello from the test server"


@dataclass
class Site:
    """A tiny HTTP/1.1 server: fixed routes, and a log of (Host header, path) requests."""

    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *header_lines = head.split("\r\n")
        path = request_line.split(" ")[1]
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        self.requests.append((headers.get("Host", headers.get("host", "")), path))
        if path == "/slow":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            await self.release.wait()
        else:
            writer.write(self._response(path))
            await writer.drain()
        writer.close()

    def _response(self, path: str) -> bytes:
        status, headers, body = "200 OK", {"Content-Type": "text/plain; charset=utf-8"}, PAGE
        if path == "/big":
            body = "x" * 5_000
        elif path == "/latin":
            headers = {"Content-Type": "text/plain; charset=iso-8859-1"}
            body = "café"
        elif path.startswith("/to/"):  # /to/<url or path>: a redirect there
            status, headers, body = "302 Found", {"Location": path[len("/to/") :]}, ""
        elif path == "/loop":
            status, headers, body = "302 Found", {"Location": "/loop"}, ""
        elif path == "/missing":
            status, body = "404 Not Found", "no such page"
        encoded = body.encode(headers.get("Content-Type", "").partition("charset=")[2] or "utf-8")
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
        lines += [f"Content-Length: {len(encoded)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode() + encoded


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    server = await asyncio.start_server(site.handle, "127.0.0.1", 0)
    site.port = server.sockets[0].getsockname()[1]
    async with server:
        yield site
        site.release.set()


async def test_fetches_a_page_from_an_allowed_host(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    output = await fetch(site.url("/page"))

    assert output == f"HTTP 200 OK\nContent-Type: text/plain; charset=utf-8\n\n{PAGE}"
    assert site.requests == [(f"127.0.0.1:{site.port}", "/page")]


async def test_an_error_status_is_output_not_a_failure(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    output = await fetch(site.url("/missing"))

    assert output.startswith("HTTP 404 Not Found\n")
    assert output.endswith("\n\nno such page")


async def test_the_body_is_decoded_with_its_charset(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    assert (await fetch(site.url("/latin"))).endswith("\n\ncafé")


async def test_an_empty_allow_list_refuses_every_url(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig())

    with pytest.raises(ValueError, match=r"no host is allowed \(tools.http_allow is empty\)"):
        await fetch(site.url("/page"))
    assert site.requests == []


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://localhost:{port}/page", "host 'localhost' is not on the allow-list"),
        ("http://127.0.0.2:{port}/page", "host '127.0.0.2' is not on the allow-list"),
        ("http://127.0.0.1@localhost:{port}/page", "host 'localhost' is not on the allow-list"),
        ("ftp://127.0.0.1:{port}/page", "only http and https URLs"),
        ("file:///etc/passwd", "only http and https URLs"),
        ("127.0.0.1:{port}/page", "only http and https URLs"),
        ("http://[::1:{port}/page", "not a valid URL"),
    ],
)
async def test_urls_off_the_allow_list_are_refused_unfetched(
    site: Site, url: str, error: str
) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    with pytest.raises(ValueError, match=error):
        await fetch(url.format(port=site.port))
    assert site.requests == []


async def test_the_body_is_cut_at_the_byte_limit(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"], http_max_bytes=100))

    output = await fetch(site.url("/big"))

    head, _, body = output.partition("\n\n")
    assert head.startswith("HTTP 200 OK")
    assert body == "x" * 100 + "\n[truncated after 100 bytes]"


async def test_a_redirect_to_an_allowed_host_is_followed(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    output = await fetch(site.url("/to/" + site.url("/page")))

    assert output.endswith(PAGE)
    assert [path for _host, path in site.requests] == ["/to/" + site.url("/page"), "/page"]


async def test_a_relative_redirect_stays_on_the_host(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    assert (await fetch(site.url("/to//page"))).endswith(PAGE)


async def test_a_redirect_off_the_allow_list_is_refused_unfetched(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))
    elsewhere = site.url("/page", host="localhost")

    with pytest.raises(ValueError, match="host 'localhost' is not on the allow-list"):
        await fetch(site.url("/to/" + elsewhere))
    assert site.requests == [(f"127.0.0.1:{site.port}", "/to/" + elsewhere)]


async def test_redirect_loops_end(site: Site) -> None:
    fetch = http_fetch_tool(ToolsConfig(http_allow=["127.0.0.1"]))

    with pytest.raises(ValueError, match=f"more than {MAX_REDIRECTS} redirects"):
        await fetch(site.url("/loop"))
    assert len(site.requests) == MAX_REDIRECTS + 1


async def test_a_response_that_never_completes_times_out(site: Site) -> None:
    fetch = http_fetch_tool(
        ToolsConfig(http_allow=["127.0.0.1"], http_timeout=timedelta(milliseconds=50))
    )

    with pytest.raises(ValueError, match=r"no complete response from .* within 0.05 s"):
        await fetch(site.url("/slow"))


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com.", True),
        ("docs.python.org", True),
        ("a.b.python.org", True),
        ("python.org", False),
        ("evilpython.org", False),
        ("example.com.evil.net", False),
        ("other.com", False),
    ],
)
def test_the_allow_list_matches_exact_hosts_and_subdomain_patterns(
    host: str, allowed: bool
) -> None:
    allow = AllowList([" Example.COM ", "*.python.org", ""])

    assert allow.allows(host) is allowed
    assert allow
    assert not AllowList([])
    assert not AllowList(["", "  "])
