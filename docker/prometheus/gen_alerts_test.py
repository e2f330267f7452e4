"""Writes docker/prometheus/alerts_test.yml: the promtool tests of alerts.yml, at two cadences.

    python gen_alerts_test.py alerts_test.yml && promtool test rules alerts_test.yml

The inputs come from a model of what the prober exports (runner.leghistory, runner.signals.metrics):
each scenario lists the runs a location's leader finished and the processes that were scraped, and
the model turns them into the series a scrape would have seen. The expected alerts are written out
by hand per scenario, from the times of those runs, never computed from the rules. Every scenario
runs at the demo's cadence (HTTP legs every 10 s, the rest every 30 s, scraped every 5 s) and at
SPEC 18's defaults (60 s / 300 s / 900 s, scraped every 15 s).

It also prints each leg's time to page at the defaults, which the README states.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

RUNBOOK = "https://github.com/payment-probe/payment-probe/blob/main/docs/runbooks/{}.md"
HTTP_LEGS = ("checkout_reachable", "billing_state", "invoices_reachable", "webhook_security")
RESULTS = ("pass", "degraded", "fail")
NO_REASON = "no reason reported"
DELAY = 15.0  # PAYMENT_PROBE_CONFIRM_DELAY_SECONDS
FLUSH = 25.0  # runner.legrun.FLUSH_SECONDS


@dataclass(frozen=True)
class Cadence:
    name: str
    intervals: dict[str, float]
    step: int  # scrape and evaluation interval

    @property
    def tick(self) -> float:
        return min(self.intervals.values())

    def retry_fits(self, leg: str, retry: float, now: float) -> bool:
        """runner.confirm: the retry and the flush end inside the leg's interval."""
        return now + DELAY + retry + FLUSH <= self.intervals[leg]


FAST = Cadence("10 s", {**dict.fromkeys(HTTP_LEGS, 10.0), "upgrade_webhook_e2e": 30.0, "tls_certificate": 30.0,
                        "webhook_replay": 30.0}, 5)
DEFAULTS = Cadence("defaults", {**dict.fromkeys(HTTP_LEGS, 60.0), "upgrade_webhook_e2e": 300.0,
                                "tls_certificate": 900.0, "webhook_replay": 300.0}, 15)


@dataclass(frozen=True)
class Run:
    leg: str
    finished: float
    result: str = "pass"
    critical: bool = False
    maintenance: bool = False
    reason: str | None = None
    by: str = "a"  # the instance that ran it


@dataclass
class Proc:
    """One prober process, scraped from ``start`` to ``end`` (then its series go stale)."""
    instance: str = "a"
    location: str = "local"
    start: float = 0.0
    end: float | None = None
    confirm: int = 2
    enabled: bool = True
    seeded: bool = True  # it reads the location's runs from the audit table (every replica follows the leader)
    legs: tuple[str, ...] = ("checkout_reachable",)
    maintenance: list[tuple[float, float]] = field(default_factory=list)


def slots(interval: float, t_from: float, t_to: float) -> list[float]:
    first = math.ceil(t_from / interval) * interval
    return [first + k * interval for k in range(int((t_to - first) // interval) + 1) if first + k * interval < t_to]


def runs(leg: str, cadence: Cadence, t_from: float, t_to: float, result: str = "pass", took: float = 0.5,
         **kw: object) -> list[Run]:
    """The leg's runs at its slots in [t_from, t_to), each finishing ``took`` after its slot."""
    return [Run(leg, slot + took, result, **kw) for slot in slots(cadence.intervals[leg], t_from, t_to)]  # type: ignore[arg-type]


def value(v: float) -> str:
    return repr(float(v)) if v != int(v) else str(int(v))


def humanize(v: float) -> str:
    """Prometheus' humanizeDuration, for the values these tests produce (>= 1 s)."""
    d = int(v)
    s, m, h, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
    if days:
        return f"{days}d {h}h {m}m {s}s"
    if h:
        return f"{h}h {m}m {s}s"
    if m:
        return f"{m}m {s}s"
    return f"{v:.4g}s"


class Series:
    def __init__(self, end: float, step: int) -> None:
        self.times = [t * step for t in range(int(end // step) + 1)]
        self.out: list[dict[str, str]] = []

    def add(self, name: str, labels: dict[str, str], proc: Proc, at: object) -> None:
        """``at(t)`` is the value at scrape t (None: absent); outside the process's life, absent (stale after)."""
        values: list[str] = []
        ended = False
        for t in self.times:
            if t < proc.start or ended:
                values.append("_")
                continue
            if proc.end is not None and t > proc.end:
                values.append("stale")
                ended = True
                continue
            v = at(t)  # type: ignore[operator]
            if v is None:  # a series the process removed (an earlier reason): stale once, then absent
                values.append("stale" if values and values[-1] not in ("_", "stale") else "_")
            else:
                values.append(value(v))
        text = ",".join(f'{k}="{v}"' for k, v in sorted({**labels, "instance": proc.instance,
                                                        "location": proc.location}.items()))
        self.out.append({"series": f"{name}{{{text}}}", "values": " ".join(values)})


def export(procs: list[Proc], all_runs: list[Run], cadence: Cadence, end: float) -> list[dict[str, str]]:
    """What each process exports at each scrape (SPEC 4, 18; runner.leghistory)."""
    series = Series(end, cadence.step)
    for p in procs:
        own = [r for r in all_runs if r.by == p.instance]
        located = [r for r in all_runs if r.by in {q.instance for q in procs if q.location == p.location}]

        def view(leg: str, t: float, p: Proc = p, own: list[Run] = own, located: list[Run] = located) -> list[Run]:
            known = located if p.seeded else [r for r in own if r.finished >= p.start]
            return sorted((r for r in known if r.leg == leg and r.finished <= t), key=lambda r: -r.finished)[:3]

        def mine(t: float, p: Proc = p, own: list[Run] = own) -> list[Run]:
            return [r for r in own if p.start <= r.finished <= t]

        series.add("instant_payment_probe_enabled", {}, p, lambda t, p=p: 1 if p.enabled else 0)
        series.add("instant_payment_probe_maintenance", {}, p,
                   lambda t, p=p: 1 if any(a <= t < b for a, b in p.maintenance) else 0)
        if not p.enabled:
            series.add("instant_payment_probe_last_run_timestamp_seconds", {}, p, lambda t: 0)
            continue
        series.add("instant_payment_probe_enabled_since_timestamp_seconds", {}, p, lambda t, p=p: p.start)
        series.add("instant_payment_probe_confirm_retries", {}, p, lambda t, p=p: p.confirm)
        series.add("instant_payment_probe_last_run_timestamp_seconds", {}, p,
                   lambda t, mine=mine: max((r.finished for r in mine(t)), default=0))
        for leg in p.legs:
            labels = {"leg": leg}
            series.add("instant_payment_probe_leg_interval_seconds", labels, p, lambda t, leg=leg: cadence.intervals[leg])
            series.add("instant_payment_probe_leg_last_run_timestamp_seconds", labels, p,
                       lambda t, leg=leg, view=view: (view(leg, t) or [Run(leg, 0)])[0].finished)
            series.add("instant_payment_probe_leg_latest_failed", labels, p, lambda t, leg=leg, view=view: int(
                bool(view(leg, t)) and view(leg, t)[0].result == "fail" and not view(leg, t)[0].maintenance))
            series.add("instant_payment_probe_leg_latest_critical", labels, p, lambda t, leg=leg, view=view: int(
                bool(view(leg, t)) and view(leg, t)[0].critical and not view(leg, t)[0].maintenance))
            series.add("instant_payment_probe_leg_recent_failures", labels, p, lambda t, leg=leg, view=view: sum(
                1 for r in view(leg, t) if r.result == "fail" and not r.maintenance))
            for result in RESULTS:
                series.add("instant_payment_probe_outcome_total", {**labels, "result": result}, p,
                           lambda t, leg=leg, result=result, mine=mine: sum(
                               1 for r in mine(t) if r.leg == leg and r.result == result))
            for reason in sorted({r.reason for r in own if r.leg == leg and r.reason}):
                series.add("instant_payment_probe_leg_reason_info", {**labels, "reason": reason}, p,
                           lambda t, leg=leg, reason=reason, mine=mine: 1 if (latest := [
                               r for r in mine(t) if r.leg == leg]) and latest[-1].reason == reason else None)
    return series.out


# ---- the expected alerts --------------------------------------------------------------------------

def latest(reasons: Iterable[tuple[str, str]]) -> str:
    listed = ", ".join(f"{loc}: {reason}" for loc, reason in reasons)
    return f" Latest reason by location: {listed or 'none reported'}."


def leg_failing(leg: str, count: int, reason: str = NO_REASON, located: Iterable[tuple[str, str]] = ()) -> dict:
    return {"exp_labels": {"severity": "page", "team": "billing-oncall", "leg": leg},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — failing, confirmed in {count} location(s)",
                "description": f"The synthetic leg {leg} is failing in {count} location(s): each ran it again inside "
                               "the run and every attempt failed (or, with confirmation off, it failed 2 of its last "
                               "3 runs there). The money path it checks is broken, not merely unconfigured. Failure "
                               "reasons are in the audit_log table and the JSON logs (field \"reason\")."
                               + latest(located),
                "runbook_url": RUNBOOK.format("PaymentProbeLegFailing")}}


def one_location(leg: str, location: str, value: int = 1, reason: str = NO_REASON,
                 located: Iterable[tuple[str, str]] = ()) -> dict:
    return {"exp_labels": {"severity": "ticket", "team": "billing-oncall", "leg": leg, "location": location},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — fails only from {location}",
                "description": f"The leg {leg} is failing, confirmed, in location {location} while another location "
                               "runs it and does not fail it. Check that location's network (DNS, egress, NAT) "
                               "before the billing API. It pages (PaymentProbeLegFailing) once a second location "
                               "agrees." + latest(located),
                "runbook_url": RUNBOOK.format("PaymentProbeLegFailingInOneLocation")}}


SECURITY_TEXT = ("The leg {} failed critically in its latest run. unsigned_accepted, forged_accepted or "
                 "stale_accepted: the webhook accepted a delivery without a valid, current signature, so anyone "
                 "can forge a paid upgrade. replay_applied: a provider's retry of an event already applied was "
                 "applied again after a cancellation. Treat as a security incident. endpoint_disabled: the payment "
                 "provider has disabled the webhook endpoint, so no real payment event reaches the billing API "
                 "(provider_webhook_health). delivery_rejected: the provider's own, correctly signed delivery was "
                 "refused (a rotated secret, an old URL, a proxy, the handler), so every real payment meets the same "
                 "(provider_roundtrip).")


def security(leg: str, reason: str = NO_REASON, located: Iterable[tuple[str, str]] = ()) -> dict:
    return {"exp_labels": {"severity": "critical", "team": "billing-oncall", "leg": leg},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — the payment webhook is open to forgery, replays, or closed to the provider",
                "description": SECURITY_TEXT.format(leg) + latest(located),
                "runbook_url": RUNBOOK.format("PaymentProbeWebhookSecurityFailing")}}


def no_run(age: float) -> dict:
    return {"exp_labels": {"severity": "page", "team": "billing-oncall"},
            "exp_annotations": {
                "summary": "payment-probe is enabled but no replica has run the legs for 3 intervals",
                "description": f"The dead man's switch: the prober is enabled yet no replica has run the legs for "
                               f"{humanize(age)} (more than 3 of its shortest intervals), or no replica has exported "
                               "any series for 20 minutes (every pod gone, crash-looping, or its scrape broken). No "
                               "leg, including checkout_reachable and webhook_security, is being checked.",
                "runbook_url": RUNBOOK.format("PaymentProbeNoRecentRun")}}


def silent(location: str, age: float) -> dict:
    return {"exp_labels": {"severity": "ticket", "team": "billing-oncall", "location": location},
            "exp_annotations": {
                "summary": f"payment-probe location {location} has not run the legs for 3 intervals",
                "description": f"Location {location} has not run the legs for {humanize(age)} (or never has, while "
                               "enabled): the money path is checked from fewer places, or not at all from it.",
                "runbook_url": RUNBOOK.format("PaymentProbeLocationSilent")}}


def degraded(leg: str, count: int, reason: str, located: Iterable[tuple[str, str]]) -> dict:
    return {"exp_labels": {"severity": "ticket", "team": "billing-oncall", "leg": leg},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — degraded in most runs of the last hour",
                "description": f"The leg {leg} was degraded in {count} of the last hour's runs (most of them): slow, "
                               "unconfigured (config_missing:...), or its credentials refused or rate-limited. "
                               "Degraded never pages; this ticket makes sure a silent gap in coverage gets fixed."
                               + latest(located),
                "runbook_url": RUNBOOK.format("PaymentProbeLegDegraded")}}


# ---- scenarios -----------------------------------------------------------------------------------

tests: list[dict] = []
pages: dict[str, dict[str, float]] = {}  # cadence -> leg -> promtool-proven seconds from an outage's start to the page


EVAL = 5  # the rules are evaluated every 5 s at both cadences


def at_step(t: float, cadence: Cadence) -> int:
    """The first scrape at or after ``t``: when a run's outcome is first seen (and evaluated)."""
    return int(math.ceil(t / cadence.step) * cadence.step)


def at_eval(t: float) -> int:
    """The first evaluation after ``t``: when a condition on time() alone turns true."""
    return int(math.floor(t / EVAL) * EVAL + EVAL)


def add(name: str, cadence: Cadence, procs: list[Proc], all_runs: list[Run], end: float,
        checks: list[tuple[float, str, list[dict]]]) -> None:
    tests.append({
        "name": f"{name} [{cadence.name}]", "interval": f"{cadence.step}s",
        "input_series": export(procs, all_runs, cadence, end),
        "alert_rule_test": [{"eval_time": f"{int(t)}s", "alertname": alert, "exp_alerts": exp}
                            for t, alert, exp in checks],
    })


BUDGET = {"checkout_reachable": 5.0, "billing_state": 2.0, "invoices_reachable": 2.0, "webhook_security": 2.0,
          "upgrade_webhook_e2e": 8.0, "tls_certificate": 2.0, "webhook_replay": 10.0}  # synthetics.registry


def failed_run_took(cadence: Cadence, leg: str, attempt: float = 0.5, worst: float = 16.0) -> float:
    """A failing leg run's length with confirmation: attempts while a retry fits (runner.confirm), each retry
    counted as the attempt it confirms, at least the leg's budget, at most its worst."""
    now, attempts = attempt, 1
    while attempts < 3 and cadence.retry_fits(leg, min(worst, max(attempt, BUDGET[leg])), now):
        now += DELAY + attempt
        attempts += 1
    return now


for C in (FAST, DEFAULTS):
    I = C.intervals["checkout_reachable"]  # noqa: E741
    checkout = "checkout_reachable"
    # 1. An outage that starts just after a leg's run: the next run fails every attempt it has room for, and the
    #    page follows at the scrape that sees it (checkout within 2 minutes at the defaults). It resolves with
    #    the first pass. Each leg alone, with its attempt's length and its worst (runner.confirm).
    for leg, attempt, worst in (("checkout_reachable", 0.5, 16.0), ("billing_state", 0.5, 16.0),
                                ("invoices_reachable", 0.5, 16.0), ("webhook_security", 0.5, 46.0),
                                ("upgrade_webhook_e2e", 30.0, 60.0), ("tls_certificate", 0.5, 16.0),
                                ("webhook_replay", 10.0, 60.0)):
        L = C.intervals[leg]
        first_fail_slot = 10 * L
        outage = first_fail_slot - L + 1.0  # just after the previous run
        took = failed_run_took(C, leg, attempt, worst)
        rs = (runs(leg, C, L, first_fail_slot)
              + runs(leg, C, first_fail_slot, first_fail_slot + 5 * L, "fail", took, reason="connection_error")
              + runs(leg, C, first_fail_slot + 5 * L, 20 * L))
        fire = at_step(first_fail_slot + took, C)
        recovered = at_step(first_fail_slot + 5 * L + 0.5, C)
        page = leg_failing(leg, 1, "connection_error", [("local", "connection_error")])
        add(f"{leg}: an outage just after a run pages at the scrape of the next run", C, [Proc(legs=(leg,))], rs,
            20 * L, [(fire - C.step, "PaymentProbeLegFailing", []), (fire, "PaymentProbeLegFailing", [page]),
                     (recovered - C.step, "PaymentProbeLegFailing", [page]), (recovered, "PaymentProbeLegFailing", []),
                     (fire, "PaymentProbeLegFailingInOneLocation", [])])
        pages.setdefault(C.name, {})[leg] = fire - outage
    if C is DEFAULTS:
        assert pages[C.name]["checkout_reachable"] <= 120, pages[C.name]
    I = C.intervals["checkout_reachable"]  # noqa: E741
    checkout = "checkout_reachable"
    took = failed_run_took(C, checkout)

    # 2. A blip a retry clears: the run passes on its second attempt; nothing ever fires.
    blip = runs(checkout, C, I, 30 * I)
    blip[9] = Run(checkout, blip[9].finished + DELAY, "pass", reason=None)
    add("a blip a retry clears never pages", C, [Proc()], blip, 30 * I,
        [(t, "PaymentProbeLegFailing", []) for t in range(0, int(30 * I), int(I))])

    # 3. Confirmation off: 2 of the last 3 runs failed pages; a single failure does not.
    billing = "billing_state"
    rs = runs(billing, C, I, 30 * I)
    for k in (10, 12):
        rs[k - 1] = Run(billing, rs[k - 1].finished, "fail")
    one_off = at_step(rs[9].finished, C)
    second = at_step(rs[11].finished, C)
    cleared = at_step(rs[12].finished, C)  # the latest three: pass, fail, pass
    add("confirmation off: 2 of the last 3 runs", C, [Proc(confirm=0, legs=(billing,))], rs, 30 * I, [
        (one_off, "PaymentProbeLegFailing", []), (second - C.step, "PaymentProbeLegFailing", []),
        (second, "PaymentProbeLegFailing", [leg_failing(billing, 1)]),
        (cleared - C.step, "PaymentProbeLegFailing", [leg_failing(billing, 1)]), (cleared, "PaymentProbeLegFailing", [])])

    # 4. webhook_security fails once (unsigned accepted: critical, never retried): critical at the scrape of that
    #    run, resolved at the next (passing) run. The summary names the latest reason.
    sec = "webhook_security"
    rs = runs(sec, C, I, 30 * I)
    rs[9] = Run(sec, rs[9].finished, "fail", critical=True, reason="unsigned_accepted")
    rs[10] = Run(sec, rs[10].finished, "pass", reason="ok")
    crit = at_step(rs[9].finished, C)
    after = at_step(rs[10].finished, C)
    alert = security(sec, "unsigned_accepted", [("local", "unsigned_accepted")])
    add("webhook_security fails once: critical at once", C, [Proc(legs=(sec,))], rs, 30 * I, [
        (crit - C.step, "PaymentProbeWebhookSecurityFailing", []), (crit, "PaymentProbeWebhookSecurityFailing", [alert]),
        (after - C.step, "PaymentProbeWebhookSecurityFailing", [alert]),
        (after, "PaymentProbeWebhookSecurityFailing", []),
        # a critical outcome is a confirmed failure too (never retried): the page comes with it
        (crit, "PaymentProbeLegFailing", [leg_failing(sec, 1, "unsigned_accepted", [("local", "unsigned_accepted")])]),
        (after, "PaymentProbeLegFailing", [])])
    pages[C.name]["webhook_security (critical)"] = crit - (rs[8].finished + 0.5)

    # 5. A replay applied (critical) from another leg: critical too, for as long as its latest run is critical.
    replay = "webhook_replay"
    R = C.intervals[replay]
    rs = runs(replay, C, R, 12 * R)
    for k in (4, 5):
        rs[k] = Run(replay, rs[k].finished, "fail", critical=True)
    crit = at_step(rs[4].finished, C)
    after = at_step(rs[6].finished, C)
    add("replay applied: critical from any leg", C, [Proc(legs=(replay,))], rs, 12 * R, [
        (crit - C.step, "PaymentProbeWebhookSecurityFailing", []),
        (crit, "PaymentProbeWebhookSecurityFailing", [security(replay)]),
        (after - C.step, "PaymentProbeWebhookSecurityFailing", [security(replay)]),
        (after, "PaymentProbeWebhookSecurityFailing", [])])

    # 6. Two locations, one failing: a ticket naming it, no page. 7. Both: a page once the second agrees.
    eu, us = Proc("pod-eu", "eu", legs=(billing,)), Proc("pod-us", "us", legs=(billing,))
    rs_eu = [Run(billing, s + 0.5, "fail" if 10 * I <= s < 15 * I else "pass", by="pod-eu")
             for s in slots(I, I, 30 * I)]
    rs_us = [Run(billing, s + 0.7, "fail" if 12 * I <= s < 14 * I else "pass", by="pod-us") for s in slots(I, I, 30 * I)]
    one = at_step(10 * I + 0.5, C)
    two = at_step(12 * I + 0.7, C)
    add("two locations, one failing: a ticket, no page", C, [eu, us], rs_eu + [
        Run(billing, s + 0.7, by="pod-us") for s in slots(I, I, 30 * I)], 30 * I, [
        (one, "PaymentProbeLegFailingInOneLocation", [one_location(billing, "eu")]),
        (one, "PaymentProbeLegFailing", []), (13 * I, "PaymentProbeLegFailing", []),
        (at_step(15 * I + 0.5, C), "PaymentProbeLegFailingInOneLocation", [])])
    add("two locations, both failing: a page", C, [eu, us], rs_eu + rs_us, 30 * I, [
        (two - C.step, "PaymentProbeLegFailing", []), (two, "PaymentProbeLegFailing", [leg_failing(billing, 2)]),
        (two, "PaymentProbeLegFailingInOneLocation", []),
        (at_step(14 * I + 0.7, C), "PaymentProbeLegFailing", []),
        (at_step(14 * I + 0.7, C), "PaymentProbeLegFailingInOneLocation", [one_location(billing, "eu")])])

    # 8. The leader restarts mid-incident (a gap of two scrapes, then a new process that reads the location's runs
    #    from the audit table): the page never resolves. 9. A rollout (the new pod up before the old one goes).
    rs = runs(checkout, C, I, 10 * I) + runs(checkout, C, 10 * I, 30 * I, "fail", took)
    old = Proc("old", end=14 * I)
    new = Proc("new", start=14 * I + 2 * C.step)
    rs = [Run(r.leg, r.finished, r.result, by="old" if r.finished < 14 * I else "new") for r in rs
          if not 14 * I <= r.finished < new.start]
    fire = at_step(10 * I + took, C)
    add("a restart mid-incident", C, [old, new], rs, 30 * I,
        [(t, "PaymentProbeLegFailing", [leg_failing(checkout, 1)]) for t in range(fire, int(30 * I), C.step * 3)])
    old = Proc("old", end=16 * I)
    new = Proc("new", start=14 * I)
    rs = runs(checkout, C, I, 30 * I, "fail", took, critical=False)
    rs = [Run(r.leg, r.finished, r.result, by="old" if r.finished < 15 * I else "new") for r in rs]
    add("a rollout mid-incident", C, [old, new], rs, 30 * I,
        [(t, "PaymentProbeLegFailing", [leg_failing(checkout, 1)]) for t in range(at_step(I + took, C), int(30 * I),
                                                                                  C.step * 3)]
        + [(t, "PaymentProbeNoRecentRun", []) for t in range(0, int(30 * I), C.step * 3)])

    # 10. A maintenance window over failing runs: no page while it is open; the first run after it passes, and
    #     nothing pages for what failed inside it. 11. It fails on after the window: the page comes with that run.
    window = (10 * I, 15 * I)
    inside = [Run(checkout, s + took, "fail", maintenance=True) for s in slots(I, *window)]
    add("maintenance, and the first run after it passes", C, [Proc(maintenance=[window])],
        runs(checkout, C, I, window[0]) + inside + runs(checkout, C, window[1], 30 * I), 30 * I,
        [(t, "PaymentProbeLegFailing", []) for t in range(0, int(30 * I), C.step)])
    after = at_step(window[1] + took, C)
    add("maintenance, and it fails on after the window", C, [Proc(maintenance=[window])],
        runs(checkout, C, I, window[0]) + inside + runs(checkout, C, window[1], 30 * I, "fail", took), 30 * I,
        [(t, "PaymentProbeLegFailing", []) for t in range(0, after, C.step)]
        + [(after, "PaymentProbeLegFailing", [leg_failing(checkout, 1)])])
    critical_inside = [Run(sec, s + 0.5, "fail", critical=True, maintenance=True) for s in slots(I, *window)]
    add("maintenance silences the critical", C, [Proc(legs=(sec,), maintenance=[window])],
        runs(sec, C, I, window[0]) + critical_inside + runs(sec, C, window[1], 30 * I), 30 * I,
        [(t, "PaymentProbeWebhookSecurityFailing", []) for t in range(0, int(30 * I), C.step)])

    # 12. The runs stop: PaymentProbeNoRecentRun once no run for 3 ticks has held for 1 minute. 13. Every series
    #     gone for 20 minutes: it pages, valued 20 minutes. 14. Flag off: silent for ever.
    last = 20 * I + 0.5
    fires = at_eval(last + 3 * C.tick) + 60
    add("no recent run", C, [Proc()], runs(checkout, C, I, 21 * I), 60 * I + 1500, [
        (fires - EVAL, "PaymentProbeNoRecentRun", []), (fires, "PaymentProbeNoRecentRun", [no_run(fires - last)]),
        (fires, "PaymentProbeLocationSilent", [])])
    add("every pod gone", C, [Proc(end=20 * I)], runs(checkout, C, I, 20 * I), 20 * I + 1500, [
        (at_eval(20 * I + 1200) + 60, "PaymentProbeNoRecentRun", [no_run(1200)])])
    add("flag off", C, [Proc(enabled=False)], [], 3600, [(t, "PaymentProbeNoRecentRun", []) for t in (600, 1800, 3600)])

    # 15. One location silent while another runs: a ticket, valued by its silence. 16. A location that has been
    #     enabled for 3 ticks and never ran, next to one that runs.
    stop = 20 * I + 0.5
    fires = at_eval(stop + 3 * C.tick) + 60
    add("one location silent while another runs", C,
        [Proc("pod-eu", "eu"), Proc("pod-us", "us")],
        [Run(checkout, s + 0.5, by="pod-eu") for s in slots(I, I, 21 * I)]
        + [Run(checkout, s + 0.5, by="pod-us") for s in slots(I, I, 60 * I)], 60 * I, [
            (fires - EVAL, "PaymentProbeLocationSilent", []),
            (fires, "PaymentProbeLocationSilent", [silent("eu", fires - stop)]),
            (fires, "PaymentProbeNoRecentRun", [])])
    joined = 10 * I
    fires = at_eval(joined + 3 * C.tick) + 60
    add("a location that never runs", C,
        [Proc("pod-eu", "eu"), Proc("pod-us", "us", start=joined)],
        [Run(checkout, s + 0.5, by="pod-eu") for s in slots(I, I, 60 * I)], 60 * I, [
            (fires - EVAL, "PaymentProbeLocationSilent", []),
            (fires, "PaymentProbeLocationSilent", [silent("us", fires - joined)])])

    # 17. Degraded every run: never a page; a ticket once most of the runs an hour holds were degraded.
    rs = runs(checkout, C, I, 3600 + 30 * I, "degraded", reason="config_missing:PAYMENT_PROBE_API_TOKEN")
    most = int(1800 // I) + 1
    opens = at_step(rs[most - 1].finished, C)
    reason = "config_missing:PAYMENT_PROBE_API_TOKEN"
    add("degraded every run", C, [Proc()], rs, 3600 + 30 * I, [
        (opens - C.step, "PaymentProbeLegDegraded", []),
        (opens, "PaymentProbeLegDegraded", [degraded(checkout, most, reason, [("local", reason)])]),
        (opens, "PaymentProbeLegFailing", [])])


doc = {"rule_files": ["alerts.yml"], "evaluation_interval": "5s", "tests": tests}
header = ("# promtool test rules alerts_test.yml — generated by gen_alerts_test.py (do not edit by hand).\n"
          "# Each alert fires when it must and stays silent when it must not, at the demo's cadence and at the\n"
          "# defaults, across restarts, rollouts and maintenance windows.\n")
with open(sys.argv[1], "w") as out:
    out.write(header + yaml.safe_dump(doc, sort_keys=False, width=10_000))
for cadence, legs in pages.items():
    for leg, seconds in legs.items():
        print(f"{cadence}: {leg} pages {seconds:.1f} s after an outage begins just after a run")
