"""``/status`` as HTML: server-rendered, self-contained (no external asset, no JavaScript needed).

Colour is never the only carrier of meaning: every state is also a word and a symbol
(✔ pass, ▲ degraded, ✖ fail, · no data), and each daily bar has a text title and a per-leg
text summary. Everything shown is escaped; nothing on it is a secret (reasons and leg names
only; no URL, token or key is part of a snapshot).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

SYMBOL = {"pass": "✔", "degraded": "▲", "fail": "✖", None: "?", "no_data": "·"}
WORD = {"pass": "pass", "degraded": "degraded", "fail": "fail", None: "no data", "no_data": "no data"}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#1b1f24;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#57606a}.banner{padding:10px 14px;border-radius:6px;margin:12px 0;font-weight:600}
.stale{background:#fff4d6;border:2px dashed #9a6700}.nohist{background:#eef2f7;border:2px solid #57606a}
.maint{background:#e8f1ff;border:2px solid #0550ae}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #d0d7de;
vertical-align:top}th{font-size:13px;color:#57606a;font-weight:600}
.state{font-weight:700;white-space:nowrap}.pass{color:#1a7f37}.degraded{color:#9a6700}.fail{color:#cf222e}
.no_data,.none{color:#57606a}
.bars{display:flex;gap:1px;height:26px;align-items:flex-end}
.bar{flex:1;min-width:3px;border-radius:1px}.bar.pass{background:#2da44e;height:100%}
.bar.degraded{background:repeating-linear-gradient(45deg,#bf8700 0 3px,#f2cc60 3px 6px);height:70%}
.bar.fail{background:#cf222e;height:100%;outline:1px solid #82071e}
.bar.no_data{background:#eaeef2;height:30%;border:1px dashed #8c959f}
.summary{font-size:13px;color:#57606a;margin:2px 0 14px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
.state-critical{background:#82071e;color:#fff;border:2px solid #4c0514;font-size:18px}
.state-failing{background:#ffebe9;border:2px solid #cf222e;color:#82071e;font-size:18px}
.state-degraded{background:#fff8c5;border:2px solid #9a6700}.state-passing{background:#dafbe1;border:2px solid #1a7f37}
.state-no_data{background:#eaeef2;border:2px dashed #57606a}
.severity.critical{color:#fff;background:#82071e;font-weight:700;border-radius:4px}
.detail{font-size:12px;color:#57606a;margin-top:2px;max-width:520px;overflow-wrap:anywhere}
.runbook{font-size:12px;margin-left:6px}
"""


def _state(result: str | None) -> str:
    cls = result or "none"
    return f'<span class="state {escape(cls)}">{SYMBOL.get(result, "?")} {escape(WORD.get(result, str(result)))}</span>'


RUNBOOKS = "https://github.com/payment-probe/payment-probe/blob/main/docs/runbooks/"
REFRESH_SECONDS = 30
PERIOD_SECONDS = {"24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
# The banner's states, worst first, and the order legs are listed in: what is broken leads.
STATES = ("critical", "failing", "degraded", "passing", "no data")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def state_of(leg: dict[str, Any]) -> str:
    result = leg.get("result")
    if result == "fail":
        return "critical" if leg.get("severity") == "critical" else "failing"
    return {"degraded": "degraded", "pass": "passing"}.get(result or "", "no data")


def _uptime(leg: dict[str, Any], period: str) -> str:
    """An uptime over a period longer than the data says how much data it covers, never a 30-day
    figure from one hour."""
    value = leg["uptime"][period]
    if value is None:
        return "—"
    covered = leg.get("data_seconds")
    if covered is not None and covered < PERIOD_SECONDS[period] - 3600:
        return f'{_pct(value)} <span class=muted>({_span(covered)} of data)</span>'
    return _pct(value)


def _span(seconds: float) -> str:
    hours = max(1, round(seconds / 3600))
    return f"{hours} h" if hours < 48 else f"{round(hours / 24)} d"


def _banner(legs: list[dict[str, Any]]) -> str:
    counts = {state: sum(1 for leg in legs if state_of(leg) == state) for state in STATES}
    worst = next(state for state in STATES if counts[state]) if legs else "no data"
    if worst == "passing" and counts["no data"] == 0:
        text = f"ALL PASSING — {counts['passing']} legs"
    else:
        text = worst.upper() + " — " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    symbol = {"critical": "✖✖", "failing": "✖", "degraded": "▲", "passing": "✔", "no data": "·"}[worst]
    return (f'<div class="banner state-{worst.replace(" ", "_")}" id=summary data-state="{worst}" role=alert>'
            f'{symbol} {escape(text)}</div>')


def _runbook(leg: dict[str, Any]) -> str:
    state = state_of(leg)
    if state not in ("critical", "failing"):
        return ""
    alert = "PaymentProbeWebhookSecurityFailing" if state == "critical" or leg["leg"] == "webhook_security" \
        else "PaymentProbeLegFailing"
    return f' <a class=runbook href="{RUNBOOKS}{alert}.md">runbook</a>'


def _detail_line(leg: dict[str, Any]) -> str:
    """The line pytest prints for the attempt: ``leg fail (critical): reason — detail``."""
    if leg.get("result") not in ("fail", "degraded"):
        return ""
    text = f'{leg["leg"]} {leg["result"]} ({leg.get("severity") or "?"}): {leg.get("reason") or ""}'
    if leg.get("detail"):
        text += f' — {leg["detail"]}'
    return f"<div class=detail><code>{escape(text)}</code></div>"


def _run_age(leg: dict[str, Any]) -> str:
    age, interval = leg.get("age_seconds"), leg.get("interval_seconds")
    if age is None:
        return "never"
    late = interval is not None and age > 3 * interval
    every = f" (every {_age(interval)})" if interval else ""
    return f'{"⚠ " if late else ""}{_age(age)} ago{every}{" — stale" if late else ""}'


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _latest_run(snapshot: dict[str, Any]) -> str:
    if snapshot.get("latest_run_at") is None:
        return "No data yet: no run has been recorded"
    return (f'Latest run: {escape(snapshot["latest_run_at"])} '
            f'(<span id=age>{_age(snapshot.get("latest_run_age_seconds"))}</span> ago)')


def _snapshot_age(snapshot: dict[str, Any]) -> str:
    """Served from a snapshot (one query at a time): say how old it is once it is not fresh."""
    age = snapshot.get("snapshot_age_seconds")
    return "" if age is None or age < 1 else f" (snapshot {_age(age)} old)"


def render(snapshot: dict[str, Any]) -> str:
    env = snapshot.get("environment")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f'<meta http-equiv=refresh content="{REFRESH_SECONDS}">',  # refreshes itself, no JavaScript
        f"<title>payment-probe status{' — ' + escape(env) if env else ''}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>payment-probe status{' — ' + escape(env) if env else ''}</h1>",
        f'<p class=muted>{_latest_run(snapshot)} · generated {escape(snapshot["generated_at"])}'
        f'{_snapshot_age(snapshot)} · <a href="/status.json">status.json</a></p>',
        _banner(snapshot["legs"]),
    ]
    if snapshot["stale"]:
        parts.append(
            f'<div class="banner stale" role=alert>⚠ STALE — the latest run is '
            f'{_age(snapshot.get("latest_run_age_seconds"))} old, more than 3 intervals '
            f'({snapshot["stale_after_seconds"]:.0f} s). The states below are the last known, not current: '
            f"the prober itself may be down.</div>")
    if not snapshot["history_available"]:
        parts.append(f'<div class="banner nohist" role=status>{escape(snapshot.get("note") or "")}. '
                     "Showing this runner's recent outcomes only.</div>")
    open_windows = [w for w in snapshot["maintenance"] if w.get("open")]
    for window in open_windows:
        parts.append(f'<div class="banner maint" role=status>🛠 MAINTENANCE until {escape(window["ends_at"])}: '
                     f'{escape(window["reason"])} (paging alerts are silent; the legs still run)</div>')
    parts.append("<h2>Legs</h2><table><thead><tr><th>leg</th><th>state</th><th>severity</th><th>reason</th>"
                 "<th>since</th><th>latest run</th><th>uptime 24 h</th><th>7 d</th><th>30 d</th>"
                 "<th>p50 / p95 (24 h)</th></tr></thead><tbody>")
    # What is broken first: critical, failing, degraded, passing, no data (stable within each).
    for leg in sorted(snapshot["legs"], key=lambda leg: STATES.index(state_of(leg))):
        parts.append(
            f'<tr id="leg-{escape(leg["leg"])}" data-result="{escape(leg["result"] or "no_data")}" '
            f'data-state="{state_of(leg)}">'
            f'<td><code>{escape(leg["leg"])}</code>{_runbook(leg)}</td><td>{_state(leg["result"])}</td>'
            f'<td class="severity {escape(leg.get("severity") or "none")}">{escape(leg.get("severity") or "—")}</td>'
            f'<td>{escape(leg["reason"] or "")}{_detail_line(leg)}</td><td>{escape(leg["since"] or "—")}</td>'
            f'<td>{_run_age(leg)}</td>'
            f'<td>{_uptime(leg, "24h")}</td><td>{_uptime(leg, "7d")}</td><td>{_uptime(leg, "30d")}</td>'
            f'<td>{_ms(leg["latency_ms"]["p50"])} / {_ms(leg["latency_ms"]["p95"])}</td></tr>')
    parts.append("</tbody></table>")
    if snapshot["history_available"]:
        parts.append("<h2>Last 90 days</h2><p class=muted>Each bar is a day (UTC), by its worst result: "
                     "✔ full green = pass, ▲ striped amber = degraded, ✖ red = fail, · dashed grey = no data "
                     "(never counted as up).</p>")
        for leg in snapshot["legs"]:
            kinds = ("pass", "degraded", "fail", "no_data")
            counts = {k: sum(1 for d in leg["days"] if d["result"] == k) for k in kinds}
            bars = "".join(
                f'<span class="bar {d["result"]}" title="{d["day"]}: {SYMBOL[d["result"]]} {WORD[d["result"]]}'
                f' ({d["runs"]} runs)"></span>' for d in leg["days"])
            parts.append(
                f'<div><code>{escape(leg["leg"])}</code></div><div class=bars role=img aria-label="90 days of '
                f'{escape(leg["leg"])}: {counts["pass"]} pass, {counts["degraded"]} degraded, {counts["fail"]} fail, '
                f'{counts["no_data"]} no data">{bars}</div><p class=summary>{counts["pass"]} days ✔ pass · '
                f'{counts["degraded"]} ▲ degraded · {counts["fail"]} ✖ fail · {counts["no_data"]} · no data</p>')
        parts.append("<h2>Recent incidents</h2>")
        if snapshot["incidents"]:
            parts.append("<table><thead><tr><th>leg</th><th>started</th><th>ended</th><th>failed runs</th>"
                         "<th>reason</th><th>trace</th></tr></thead><tbody>")
            for inc in snapshot["incidents"]:
                ended = "ongoing ✖" if inc["ongoing"] else escape(inc["ended_at"] or "")
                parts.append(f'<tr><td><code>{escape(inc["leg"])}</code></td><td>{escape(inc["started_at"])}</td>'
                             f'<td>{ended}</td><td>{inc["runs"]}</td><td>{escape(inc["reason"] or "")}</td>'
                             f'<td><code>{escape(inc.get("trace_id") or "—")}</code></td></tr>')
            parts.append("</tbody></table>")
        else:
            parts.append("<p class=muted>No failures in the last 30 days.</p>")
    if len(snapshot.get("locations") or {}) > 1:
        parts.append("<h2>By location</h2><table><thead><tr><th>location</th><th>leg</th><th>state</th>"
                     "<th>reason</th><th>latest run</th></tr></thead><tbody>")
        for location, rows in sorted(snapshot["locations"].items()):
            for row in rows:
                parts.append(f'<tr><td>{escape(location)}</td><td><code>{escape(row["leg"])}</code></td>'
                             f'<td>{_state(row["result"])}</td><td>{escape(row["reason"] or "")}</td>'
                             f'<td>{escape(row["last_run_at"] or "")}</td></tr>')
        parts.append("</tbody></table>")
    parts.append("<h2>Maintenance windows</h2>")
    if snapshot["maintenance"]:
        parts.append("<table><thead><tr><th>state</th><th>starts</th><th>ends</th><th>reason</th></tr></thead><tbody>")
        for w in snapshot["maintenance"]:
            parts.append(f'<tr><td>{"open" if w.get("open") else "upcoming"}</td><td>{escape(w["starts_at"])}</td>'
                         f'<td>{escape(w["ends_at"])}</td><td>{escape(w["reason"])}</td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append("<p class=muted>None open or upcoming.</p>")
    parts.append("</body></html>")
    return "".join(parts)


def as_json(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(snapshot, separators=(",", ":")).encode()
