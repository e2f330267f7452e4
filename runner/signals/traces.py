"""OpenTelemetry traces of every run, leg attempt and HTTP exchange (SPEC section 16).

Made only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set
and ``OTEL_SDK_DISABLED`` is not ``true`` (``ProbeConfig.trace_export``, read at start); otherwise
``from_config`` returns ``None`` before the SDK is imported, and a run pays nothing. The official
SDK and OTLP/HTTP exporter do the work, so every standard ``OTEL_*`` variable means what it means
elsewhere (the endpoint, headers, timeout and service name are read with the other settings, so a
bad endpoint is exit 2 at start); two things are ours:

- export is off the run's path (``BatchSpanProcessor``, bounded queue) and every export POST goes
  through ``synthetics.wire`` under one 5 s deadline (``WireSession``): the exporter's requests
  timeout is per read, so a collector that trickles would otherwise hold the export thread, and
  the process's exit, for as long as it trickles;
- an export that fails is counted as a sink error (``sink="traces"``) and logged, never raised.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from synthetics import wire
from synthetics.config import TraceExport
from synthetics.secret import without_userinfo

log = logging.getLogger("payment_probe.traces")

QUEUE_SPANS = 2048  # the batch processor's bound: past it spans are dropped, never the run slowed
SHUTDOWN_SECONDS = 5.0  # how long a process's exit waits for the last batch
TRACESTATE = "payment-probe=synthetic"


def _session(budget: float) -> Any:
    """A ``requests.Session`` whose every request is one ``synthetics.wire`` exchange under ``budget``."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    class WireAdapter(BaseAdapter):
        def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
                 cert: Any = None, proxies: Any = None) -> Any:
            seconds = budget
            if isinstance(timeout, int | float):
                seconds = min(seconds, float(timeout))
            context = None
            if str(request.url).startswith("https://"):
                context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
                if cert:
                    context.load_cert_chain(*(cert if isinstance(cert, tuple) else (cert,)))
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in ("content-length", "host", "connection")}
            body = request.body.encode() if isinstance(request.body, str) else request.body
            try:
                answer = wire.exchange(request.method, request.url, headers=headers, body=body or b"",
                                       timeout=seconds, context=context, max_body=64 * 1024)
            except wire.WireError as exc:
                raise requests.ConnectionError(f"OTLP export: {exc.kind}") from None
            if 300 <= answer.status < 400:
                # The exporter counts every status below 400 as delivered; a collector's or a proxy's
                # redirect is not followed (SPEC 4), so the batch is lost: a failed export, counted.
                raise requests.TooManyRedirects(f"OTLP export: redirect:{answer.status} (not followed)")
            response = requests.Response()
            response.status_code = answer.status
            response._content = answer.body
            response.headers = CaseInsensitiveDict(answer.headers)
            response.url = request.url
            response.request = request
            response.reason = ""
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the collector is addressed directly
    for prefix in ("http://", "https://"):
        session.mount(prefix, WireAdapter())
    return session


class Traces:
    """One tracer provider for the process; spans for runs, leg attempts and exchanges."""

    def __init__(self, provider: Any, on_error: Callable[[str], None]) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("payment-probe")
        self._on_error = on_error
        self._run: Any = None
        self._parent: Any = None  # the run's context: this process's run span, or a worker's joined one
        self._leg: Any = None

    @classmethod
    def from_config(cls, export: TraceExport | None, on_error: Callable[[str], None] = lambda _s: None,
                    ) -> Traces | None:
        """The tracer for ``ProbeConfig.trace_export`` (read and checked at start with every other
        setting); ``None``, before the SDK is imported, when tracing is off."""
        if export is None:
            return None
        from runner.extras import require

        require("traces", f"{export.variable} (traces)")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.util.re import parse_env_headers

        from synthetics import __version__

        # Attributes given here win over OTEL_RESOURCE_ATTRIBUTES, so the service name is given here.
        resource = Resource.create({"service.name": export.service_name, "service.version": __version__})
        provider = TracerProvider(resource=resource)
        headers = parse_env_headers(export.headers.reveal() if export.headers else "", liberal=True)
        exporter = _counted(OTLPSpanExporter(endpoint=export.endpoint.reveal(), headers=headers,
                                             timeout=export.timeout_seconds,
                                             session=_session(export.timeout_seconds)), on_error)
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=QUEUE_SPANS,
                                                       export_timeout_millis=int(export.timeout_seconds * 1000)))
        return cls(provider, on_error)

    # ---- a run ---------------------------------------------------------------------------------
    def start_run(self, run_id: str, location: str, environment: str | None) -> None:
        attributes = {"test.suite.name": "payment-probe", "payment_probe.run_id": run_id,
                      "payment_probe.location": location}
        if environment:
            attributes["deployment.environment.name"] = environment
        self._run = self._tracer.start_span("payment-probe run", attributes=attributes)
        self._parent = self._trace.set_span_in_context(self._run)

    @property
    def running(self) -> bool:
        """A run span is open in this process."""
        return self._run is not None

    def run_traceparent(self) -> str | None:
        """The open run span as a W3C ``traceparent``: what an xdist worker joins its leg spans to."""
        if self._parent is None:
            return None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=self._parent)
        return carrier.get("traceparent")

    def join_run(self, traceparent: str) -> None:
        """In an xdist worker: the leg spans it starts are children of the controller's run span."""
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})

    def end_run(self, failed: bool) -> None:
        self._parent = None
        if self._run is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._run.set_attribute("test.suite.run.status", "failure" if failed else "success")
        if failed:
            self._run.set_status(Status(StatusCode.ERROR))
        self._run.end()
        self._run = None

    # ---- a leg attempt ---------------------------------------------------------------------------
    def start_leg(self, leg: str, attempt: int) -> str:
        """Start the leg's span (a child of the run's); returns its trace id, 32 hex."""
        self._leg = self._tracer.start_span(f"payment-probe leg {leg}", context=self._parent, attributes={
            "test.case.name": leg, "payment_probe.attempt": attempt})
        return format(self._leg.get_span_context().trace_id, "032x")

    def end_leg(self, result: str, severity: str, reason: str) -> None:
        if self._leg is None:
            return
        from opentelemetry.trace import Status, StatusCode

        status = {"pass": "pass", "fail": "fail", "degraded": "skipped"}.get(result, result)
        self._leg.set_attributes({"test.case.result.status": status, "payment_probe.result": result,
                                  "payment_probe.severity": severity, "payment_probe.reason": reason})
        if result == "fail":
            self._leg.set_status(Status(StatusCode.ERROR, reason))
        self._leg.end()
        self._leg = None

    # ---- an HTTP exchange ------------------------------------------------------------------------
    def exchange(self, method: str, url: str) -> _Exchange:
        from opentelemetry.trace import SpanKind

        parent = self._trace.set_span_in_context(self._leg) if self._leg is not None else None
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        span = self._tracer.start_span(f"{method}", context=parent, kind=SpanKind.CLIENT, attributes={
            "http.request.method": method, "url.full": without_userinfo(url).split("?", 1)[0],
            "server.address": parts.hostname or "", "server.port": parts.port or (443 if parts.scheme == "https"
                                                                                 else 80)})
        return _Exchange(span)

    def shutdown(self, seconds: float = SHUTDOWN_SECONDS) -> None:
        """Flush and stop, waiting at most ``seconds``: a collector that hangs must not hold an exit."""
        worker = threading.Thread(target=self._provider.shutdown, name="traces-shutdown", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            log.warning("trace export did not finish within %.0fs at exit; the last spans are dropped", seconds)


class _Exchange:
    """A ``CLIENT`` span around one request; its W3C ``traceparent`` goes with the request."""

    def __init__(self, span: Any) -> None:
        from opentelemetry.trace import set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._span = span
        carrier: dict[str, str] = {}
        # The W3C propagator itself, as OpenTelemetry's HTTP instrumentations inject it.
        TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(span))
        self.headers = {"traceparent": carrier["traceparent"], "tracestate": TRACESTATE}

    def finish(self, status: int | None, phases: Mapping[str, float], error: str | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        if status is not None:
            self._span.set_attribute("http.response.status_code", status)
        for phase, seconds in phases.items():
            self._span.set_attribute(f"payment_probe.phase.{phase}_seconds", round(float(seconds), 6))
        failed = error is not None or (status is not None and status >= 500)
        if failed:
            self._span.set_attribute("error.type", error or str(status))
            self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()


def _counted(exporter: Any, on_error: Callable[[str], None]) -> Any:
    """The exporter, with each failed export counted as a sink error and logged (never raised)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counted(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            try:
                result = exporter.export(spans)
            except Exception as exc:
                result = SpanExportResult.FAILURE
                log.warning("trace export failed (%s)", type(exc).__name__)
            if result != SpanExportResult.SUCCESS:
                on_error("traces")
                log.warning("trace export of %d span(s) failed; counted as a sink error", len(spans))
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(exporter.force_flush(timeout_millis))

    return Counted()
