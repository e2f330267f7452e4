"""HTTP plumbing shared by every leg: identifying headers, no redirects, a bounded read, timing.

Bodies are read with ``read1`` in small chunks against a wall-clock deadline, so an endless
body, a 100 MB body or a server trickling one byte a second ends as a ``fail`` with a reason
inside the request timeout, never as a hang or an out-of-memory kill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from synthetics import __version__
from synthetics.config import ProbeConfig
from synthetics.failures import LegFailed

MAX_BODY_BYTES = 1024 * 1024
CHUNK_BYTES = 16 * 1024
USER_AGENT = f"payment-probe/{__version__}"


@dataclass(frozen=True)
class ProbeResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]
    elapsed_seconds: float

    def json(self) -> Any:
        """The parsed body, or ``LegFailed('not_json')``: an HTML 200 is the classic false pass."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise LegFailed("not_json", f"HTTP {self.status} body is not JSON ({type(exc).__name__})") from None


class ProbeClient:
    """A ``requests.Session`` that sends the probe's headers and times each exchange."""

    def __init__(
        self,
        config: ProbeConfig,
        on_response: Callable[[float], None] | None = None,
    ) -> None:
        if not config.base_url:
            raise ValueError("ProbeClient needs a base URL")
        self.base_url = config.base_url
        self.timeout = config.http_timeout_seconds
        self._on_response = on_response
        self.session = requests.Session()
        self.session.trust_env = False  # an operator's HTTP(S)_PROXY must not reroute the probe
        self.session.headers.update(
            {
                "User-Agent": USER_AGENT,
                "X-Synthetic-Probe": "payment-probe",
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            }
        )
        if config.api_token:
            self.session.headers["Authorization"] = f"Bearer {config.api_token}"

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProbeResponse:
        url = self.base_url + path
        send_headers = dict(headers or {})
        if body is not None:
            send_headers.setdefault("Content-Type", "application/json")
        started = time.perf_counter()
        deadline = started + self.timeout
        try:
            resp = self.session.request(
                method,
                url,
                data=body,
                headers=send_headers,
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.Timeout:
            raise LegFailed("timeout", f"{method} {path}: no answer within {self.timeout:g}s") from None
        except requests.exceptions.SSLError:
            raise LegFailed("tls_error", f"{method} {path}: TLS handshake failed") from None
        except requests.exceptions.ConnectionError as exc:
            raise LegFailed("connection_error", f"{method} {path}: {_short(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise LegFailed("connection_error", f"{method} {path}: {type(exc).__name__}") from None
        headers_at = time.perf_counter()
        try:
            payload = _read_capped(resp, deadline, f"{method} {path}")
        finally:
            resp.close()
        # Network time only: requests' own clock runs from sending to the parsed headers,
        # leaving out its request preparation; the capped body read is added to it.
        elapsed = resp.elapsed.total_seconds() + (time.perf_counter() - headers_at)
        if self._on_response is not None:
            self._on_response(elapsed)
        return ProbeResponse(resp.status_code, payload, dict(resp.headers), elapsed)


def _read_capped(resp: requests.Response, deadline: float, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = resp.raw.read1(CHUNK_BYTES, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise LegFailed("body_too_large", f"{what}: body exceeds {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if time.perf_counter() > deadline:
                raise LegFailed("timeout", f"{what}: body not complete within the request timeout")
    except LegFailed:
        raise
    except Exception as exc:  # urllib3 read timeouts, resets, protocol errors, bad gzip
        name = type(exc).__name__
        reason = "timeout" if "Timeout" in name else "connection_error"
        raise LegFailed(reason, f"{what}: body read failed ({name})") from None


def _short(exc: BaseException) -> str:
    """A one-line cause without the URL's query string or a wall of urllib3 reprs."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset by peer"):
        if marker in text:
            return marker
    return type(exc).__name__
