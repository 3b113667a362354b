"""Fixtures that start the juhe sandbox as a real HTTP server on a free local port.

- `sandbox`: a started `SandboxServer` with the default config; `JUHE_BASE_URL` and
  `JUHE_API_KEY` point at it for the test's duration.
- `sandbox_factory(**config)`: starts more servers from `SandboxConfig` keyword arguments;
  every server it started is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from juhe_sandbox.server import SandboxConfig, SandboxServer

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    started: list[SandboxServer] = []

    def start(**config: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    server = sandbox_factory()
    monkeypatch.setenv("JUHE_BASE_URL", server.url)
    monkeypatch.setenv("JUHE_API_KEY", server.config.api_key)
    return server
