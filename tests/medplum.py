"""A real FHIR server for the tests: Medplum's router and in-memory repository under Node.

``tests/fhir_server/server.mjs`` runs as a subprocess on a free loopback port (one per test
session, emptied before each test). ``./install.sh --test`` installs its packages; when Node or
the packages are missing the tests that need it fail with a one-line reason, they are never
skipped.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

SERVER_DIR = Path(__file__).parent / "fhir_server"
SCRIPT = SERVER_DIR / "server.mjs"
START_TIMEOUT_S = 60.0  # indexing the R4 definitions takes about a second; a loaded machine more
FHIR_JSON = "application/fhir+json"


class MedplumUnavailable(RuntimeError):
    """Node or the server's packages are missing, or the server did not start."""


def _node() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise MedplumUnavailable(
            "the FHIR test server needs Node.js (node not on PATH): run ./install.sh --test"
        )
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        raise MedplumUnavailable(
            f"the FHIR test server's packages are not installed in {SERVER_DIR.name}/: "
            "run ./install.sh --test (npm ci there)"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    major = int(version.lstrip("v").split(".")[0])
    if major < 20:
        raise MedplumUnavailable(
            f"the FHIR test server needs Node.js 20 or newer, found {version}: see README, Tests"
        )
    # Medplum 5 uses the global WebSocket, built in from Node 22 and behind a flag in Node 20.
    return [node, "--experimental-websocket"] if major < 22 else [node]


class MedplumServer:
    """The Node process: started once, its port read from its first stdout line."""

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The FHIR base URL (what a ``kind = "fhir"`` destination is configured with)."""
        return f"{self.base}/fhir"

    def start(self) -> MedplumServer:
        self._process = subprocess.Popen(
            [*_node(), str(SCRIPT)],
            cwd=SERVER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self._process.stdout is not None
        line = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise MedplumUnavailable(
                        f"the FHIR test server printed no port in {START_TIMEOUT_S:g} s"
                    )
                chunk = os.read(self._process.stdout.fileno(), 64)
                if not chunk:
                    self.stop()
                    raise MedplumUnavailable(f"the FHIR test server exited: {self.stderr_tail()}")
                line += chunk
        self.port = int(line.strip())
        return self

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(nothing on stderr)"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


class Medplum:
    """An async client of the running server, for what the tests read back and reset."""

    def __init__(self, server: MedplumServer) -> None:
        self.server = server
        self.url = server.url

    async def _call(
        self, method: str, url: str, body: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, data=data, headers=headers) as response,
        ):
            text = await response.read()
            if response.status not in expect:
                raise AssertionError(f"{method} {url} -> {response.status}: {text[:500]!r}")
            return orjson.loads(text)

    async def reset(self) -> None:
        await self._call("POST", f"{self.server.base}/_reset")

    async def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        """Every match (one page of up to 1000: the tests store far fewer)."""
        query = urlencode({**params, "_count": "1000"})
        bundle = await self._call("GET", f"{self.url}/{resource_type}?{query}")
        return [entry["resource"] for entry in bundle.get("entry", [])]

    async def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", f"{self.url}/{resource['resourceType']}", resource)

    async def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/{resource['resourceType']}/{resource['id']}"
        return await self._call("PUT", url, resource)

    async def transaction(self, bundle: dict[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
        """POST a transaction Bundle; (status, the answer) whatever the status."""
        data = bundle if isinstance(bundle, bytes) else orjson.dumps(bundle)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=data, headers=headers) as response,
        ):
            return response.status, orjson.loads(await response.read())
