"""Generates docker/prometheus/alerts_test.yml (kept in the repo; this script is only a helper)."""
import yaml, sys

RUNBOOK = "https://github.com/payment-probe/payment-probe/blob/main/docs/runbooks/{}.md"

def steps(at, end, start=0):
    """A counter sampled every minute from 0..end that adds 1 at each minute in `at`."""
    v, out = start, []
    for t in range(end + 1):
        if t in at:
            v += 1
        out.append(str(v))
    return " ".join(out)

def alive(values, first, last):
    """Missing before `first`, the given per-minute values, stale after `last`."""
    vals = values.split()
    out = ["_"] * first + vals[first:last + 1] + ["stale"]
    return " ".join(out)

NO_REASON = "no reason reported"  # a case without instant_payment_probe_leg_reason_info series


def reason_series(leg, reason, minutes, location="local", instance="a"):
    """The leg's latest reason (1), as the runner exports it (with its location): what a summary and a
    description name."""
    where = f'instance="{instance}",location="{location}",'
    return {"series": f'instant_payment_probe_leg_reason_info{{{where}leg="{leg}",reason="{reason}"}}',
            "values": f"1x{minutes}"}


def latest(reason, location="local"):
    """The description's last sentence: each location's latest reason for the leg."""
    return f" Latest reason by location: {location}: {reason}." if reason != NO_REASON else \
        " Latest reason by location: none reported."


def leg_failing(leg, value, extra=None, reason=NO_REASON, location="local"):
    return {"exp_labels": {"severity": "page", "team": "billing-oncall", "leg": leg},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — failing, confirmed in {value} location(s)",
                "description": f"The synthetic leg {leg} is failing in {value} location(s): each ran it again inside the run and every attempt failed (or, with confirmation off, it failed 2 of its last 3 runs there). The money path it checks is broken, not merely unconfigured. Failure reasons are in the audit_log table and the JSON logs (field \"reason\")." + latest(reason, location),
                "runbook_url": RUNBOOK.format("PaymentProbeLegFailing")}}

def one_location(leg, location, reason=NO_REASON, reason_location="local"):
    return {"exp_labels": {"severity": "ticket", "team": "billing-oncall", "leg": leg, "location": location},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — fails only from {location}",
                "description": f"The leg {leg} is failing, confirmed, in location {location} while another location runs it and does not fail it. Check that location's network (DNS, egress, NAT) before the billing API. It pages (PaymentProbeLegFailing) once a second location agrees." + latest(reason, reason_location),
                "runbook_url": RUNBOOK.format("PaymentProbeLegFailingInOneLocation")}}

def silent(location, age):
    return {"exp_labels": {"severity": "ticket", "team": "billing-oncall", "location": location},
            "exp_annotations": {
                "summary": f"payment-probe location {location} has not run the legs for 3 intervals",
                "description": f"Location {location} has not run the legs for {age} (or never has, while enabled): the money path is checked from fewer places, or not at all from it.",
                "runbook_url": RUNBOOK.format("PaymentProbeLocationSilent")}}

SECURITY_TEXT = ("The leg {} failed critically in its latest run. unsigned_accepted, forged_accepted or "
                 "stale_accepted: the webhook accepted a delivery without a valid, current signature, so anyone "
                 "can forge a paid upgrade. replay_applied: a provider's retry of an event already applied was "
                 "applied again after a cancellation. Treat as a security incident.")

def security(leg, reason=NO_REASON):
    return {"exp_labels": {"severity": "critical", "team": "billing-oncall", "leg": leg},
            "exp_annotations": {
                "summary": f"{leg}: {reason} — the payment webhook accepted what it must refuse",
                "description": SECURITY_TEXT.format(leg) + latest(reason),
                "runbook_url": RUNBOOK.format("PaymentProbeWebhookSecurityFailing")}}

WEBHOOK = security("webhook_security")

NO_RUN_TEXT = ("The dead man's switch: the prober is enabled yet no replica has run the legs for {} (more than 3 "
               "intervals of 5 minutes), or no replica has exported any series for 20 minutes (every pod gone, "
               "crash-looping, or its scrape broken). No leg, including checkout_reachable and webhook_security, is "
               "being checked.")

def no_run(age):
    return {"exp_labels": {"severity": "page", "team": "billing-oncall"},
            "exp_annotations": {"summary": "payment-probe is enabled but no replica has run the legs for 3 intervals",
                                "description": NO_RUN_TEXT.format(age),
                                "runbook_url": RUNBOOK.format("PaymentProbeNoRecentRun")}}

def at(t, name, alerts):
    return {"eval_time": f"{t}m", "alertname": name, "exp_alerts": alerts}

S = 'instant_payment_probe_outcome_total{{instance="{i}",leg="{leg}",result="{r}"}}'
tests = []

# 1. Two failures in the last three 5-minute runs: pages at the scrape of the second (first-firing delay:
#    one interval after the first failed run). One failure is not enough; it resolves when the window passes.
tests.append({"name": "leg failing: 2 of the last 3 runs", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="billing_state", r="fail"), "values": steps({21, 26}, 60)},
    {"series": S.format(i="b", leg="billing_state", r="fail"), "values": steps(set(), 60)}],
 "alert_rule_test": [at(25, "PaymentProbeLegFailing", []), at(26, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(34, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]), at(36, "PaymentProbeLegFailing", [])]})
# 2. A single flaky failure, then passes: silent. 3. Two failures more than 3 runs apart: silent.
tests.append({"name": "one flaky failure", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="invoices_reachable", r="fail"), "values": steps({21}, 50)},
    {"series": S.format(i="a", leg="invoices_reachable", r="pass"), "values": steps(set(range(1, 51, 5)) - {21}, 50)}],
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", []) for t in (22, 30, 40)]})
tests.append({"name": "two failures 4 runs apart", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="checkout_reachable", r="fail"), "values": steps({21, 41}, 60)}],
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", []) for t in (30, 41, 45)]})
# 4. webhook_security failing once: critical at the scrape of that run, resolved after the next (passing) run.
#    Its summary names the latest reason (instant_payment_probe_leg_reason_info).
UNSIGNED = security("webhook_security", "unsigned_accepted")
tests.append({"name": "webhook security fails once", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="webhook_security", r="fail"), "values": steps({21}, 50)},
    reason_series("webhook_security", "unsigned_accepted", 50)],
 "alert_rule_test": [at(20, "PaymentProbeWebhookSecurityFailing", []), at(21, "PaymentProbeWebhookSecurityFailing", [UNSIGNED]),
                     at(26, "PaymentProbeWebhookSecurityFailing", [UNSIGNED]), at(27, "PaymentProbeWebhookSecurityFailing", []),
                     at(35, "PaymentProbeWebhookSecurityFailing", [])]})
# 5. Degraded every run: never pages; the ticket opens at the 7th degraded run of the hour (30 min after the first).
deg_runs = set(range(21, 200, 5))
tests.append({"name": "degraded every run", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="upgrade_webhook_e2e", r="degraded"), "values": steps(deg_runs, 130)},
    {"series": S.format(i="a", leg="upgrade_webhook_e2e", r="fail"), "values": steps(set(), 130)},
    reason_series("upgrade_webhook_e2e", "config_missing:PAYMENT_PROBE_DATABASE_URL", 130)],
 "alert_rule_test": [at(90, "PaymentProbeLegFailing", []), at(90, "PaymentProbeWebhookSecurityFailing", []),
                     at(50, "PaymentProbeLegDegraded", []),
                     at(51, "PaymentProbeLegDegraded", [{"exp_labels": {"severity": "ticket", "team": "billing-oncall", "leg": "upgrade_webhook_e2e"},
                        "exp_annotations": {"summary": "upgrade_webhook_e2e: config_missing:PAYMENT_PROBE_DATABASE_URL — degraded in most runs of the last hour",
                                            "description": "The leg upgrade_webhook_e2e was degraded in 7 of the last hour's runs (most of 12): slow, unconfigured (config_missing:...), or its credentials refused or rate-limited. Degraded never pages; this ticket makes sure a silent gap in coverage gets fixed." + latest("config_missing:PAYMENT_PROBE_DATABASE_URL"),
                                            "runbook_url": RUNBOOK.format("PaymentProbeLegDegraded")}}])]})
# 6. Dead man's switch: the last run at 10m, then nothing: fires 17 minutes later (3 intervals + 1m + its 1m hold).
tests.append({"name": "no recent run", "interval": "1m", "input_series": [
    {"series": 'instant_payment_probe_enabled{instance="a"}', "values": "1x60"},
    {"series": 'instant_payment_probe_enabled{instance="b"}', "values": "1x60"},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="a"}', "values": "0 0 0 0 0 300x4 600x50"},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="b"}', "values": "0x60"}],
 "alert_rule_test": [at(25, "PaymentProbeNoRecentRun", []), at(27, "PaymentProbeNoRecentRun", [{
     "exp_labels": {"severity": "page", "team": "billing-oncall"},
     "exp_annotations": {"summary": "payment-probe is enabled but no replica has run the legs for 3 intervals",
                         "description": NO_RUN_TEXT.format("17m 0s"),
                         "runbook_url": RUNBOOK.format("PaymentProbeNoRecentRun")}}])]})
tests.append({"name": "disabled", "interval": "1m", "input_series": [
    {"series": "instant_payment_probe_enabled", "values": "0x120"},
    {"series": "instant_payment_probe_last_run_timestamp_seconds", "values": "0x120"}],
 "alert_rule_test": [at(110, "PaymentProbeNoRecentRun", [])]})
tests.append({"name": "healthy", "interval": "5m", "input_series": [
    {"series": "instant_payment_probe_enabled", "values": "1x24"},
    {"series": "instant_payment_probe_last_run_timestamp_seconds", "values": "0+300x24"}],
 "alert_rule_test": [at(115, "PaymentProbeNoRecentRun", [])]})
# 7. The leader restarts mid-incident: the old pod's series go stale at 32m, the new pod (new instance) starts
#    at 0 and its first run beats its first scrape (first seen 1 at 34m), and billing_state keeps failing.
old = steps({20, 25, 30}, 60)
new = steps({34, 38, 43, 48}, 60)
tests.append({"name": "leader restart mid-incident", "interval": "1m", "input_series": [
    {"series": S.format(i="old", leg="billing_state", r="fail"), "values": alive(old, 0, 31)},
    {"series": S.format(i="new", leg="billing_state", r="fail"), "values": " ".join(["_"] * 34 + new.split()[34:])}],
 "alert_rule_test": [at(24, "PaymentProbeLegFailing", []), at(25, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(33, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(36, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(40, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(46, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)]),
                     at(50, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)])]})
# 8. A rollout while webhook_security fails: the critical alert never resolves in between.
tests.append({"name": "rollout during a webhook_security incident", "interval": "1m", "input_series": [
    {"series": S.format(i="old", leg="webhook_security", r="fail"), "values": alive(old, 0, 31)},
    {"series": S.format(i="new", leg="webhook_security", r="fail"), "values": " ".join(["_"] * 34 + new.split()[34:])}],
 "alert_rule_test": [at(t, "PaymentProbeWebhookSecurityFailing", [WEBHOOK]) for t in range(20, 50)]})
# 9. A clean restart with nothing failing: silent, the dead man's switch included.
tests.append({"name": "clean restart", "interval": "1m", "input_series": [
    {"series": S.format(i="old", leg="webhook_security", r="fail"), "values": alive(steps(set(), 60), 0, 31)},
    {"series": S.format(i="new", leg="webhook_security", r="fail"), "values": " ".join(["_"] * 33 + ["0"] * 28)},
    {"series": S.format(i="old", leg="webhook_security", r="pass"), "values": alive(steps({5, 10, 15, 20, 25, 30}, 60), 0, 31)},
    {"series": S.format(i="new", leg="webhook_security", r="pass"), "values": " ".join(["_"] * 33 + steps({36, 41, 46, 51, 56}, 60).split()[33:])},
    {"series": 'instant_payment_probe_enabled{instance="old"}', "values": alive("1 " * 61, 0, 31)},
    {"series": 'instant_payment_probe_enabled{instance="new"}', "values": " ".join(["_"] * 33 + ["1"] * 28)},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="old"}', "values": alive(" ".join(str(300 * (t // 5)) for t in range(61)), 0, 31)},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="new"}', "values": " ".join(["_"] * 33 + [str(0 if t < 36 else 300 * ((t - 36) // 5) + 2160) for t in range(33, 61)])}],
 "alert_rule_test": [at(t, n, []) for t in (30, 33, 34, 36, 40, 50) for n in ("PaymentProbeWebhookSecurityFailing", "PaymentProbeLegFailing", "PaymentProbeNoRecentRun")]})
# 10. A pod that crash-loops faster than the window, failing every run it makes (primed 0 at each start): pages.
loop = " ".join(["0", "1", "1"] * 20)
tests.append({"name": "crash-looping pod", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="checkout_reachable", r="fail"), "values": loop}],
 "alert_rule_test": [at(3, "PaymentProbeLegFailing", []), at(4, "PaymentProbeLegFailing", [leg_failing("checkout_reachable", 1)]),
                     at(30, "PaymentProbeLegFailing", [leg_failing("checkout_reachable", 1)])]})
# 11. A maintenance window open while legs fail and runs stop: no page, no critical; the ticket still may.
tests.append({"name": "maintenance window", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="billing_state", r="fail"), "values": steps({21, 26, 31, 36, 41, 46}, 60)},
    {"series": S.format(i="a", leg="webhook_security", r="fail"), "values": steps({21, 26, 31}, 60)},
    {"series": 'instant_payment_probe_enabled{instance="a"}', "values": "1x60"},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="a"}', "values": "0x60"},
    {"series": 'instant_payment_probe_maintenance{instance="a"}', "values": "0x19 1x25 0x15"},
    {"series": 'instant_payment_probe_maintenance{instance="b"}', "values": "0x60"}],
 "alert_rule_test": [at(t, n, []) for t in (22, 26, 31, 44) for n in ("PaymentProbeLegFailing", "PaymentProbeWebhookSecurityFailing", "PaymentProbeNoRecentRun")]
   + [at(46, "PaymentProbeLegFailing", [leg_failing("billing_state", 1)])]})  # the window closed, still failing: pages

# 12. Absence. A healthy prober (runs every 5 minutes) until its last run at 30m, then every pod gone (its
#     series end): the stopped runs page at 47m (3 intervals + 1m + the 1m hold), and once nothing at all
#     has been exported for 20 minutes the absence keeps it firing (90m), never a gap between the two.
def healthy_until(last, end, instance="a"):
    runs = " ".join(str(300 * (t // 5)) for t in range(last + 1))
    return [{"series": f'instant_payment_probe_enabled{{instance="{instance}"}}', "values": alive("1 " * (end + 1), 0, last)},
            {"series": f'instant_payment_probe_last_run_timestamp_seconds{{instance="{instance}"}}',
             "values": alive(runs + " 0" * (end - last), 0, last)}]
tests.append({"name": "every pod gone", "interval": "1m", "input_series": healthy_until(30, 100),
 "alert_rule_test": [at(44, "PaymentProbeNoRecentRun", []), at(46, "PaymentProbeNoRecentRun", []),
                     at(47, "PaymentProbeNoRecentRun", [no_run("17m 0s")]),
                     at(50, "PaymentProbeNoRecentRun", [no_run("20m 0s")]),
                     *[at(t, "PaymentProbeNoRecentRun", [no_run("20m 0s")]) for t in (51, 52, 60, 75, 90, 100)]]})
# 13. A rollout to a version that crash-loops on exit 2 before its first scrape: the same as every pod gone.
#     A broken scrape (the pods run, Prometheus cannot reach them) leaves the same absence: the same page.
tests.append({"name": "crash loop never scraped, or a broken scrape", "interval": "1m",
 "input_series": [*healthy_until(30, 100), {"series": 'up{instance="a",job="payment-probe"}', "values": "1x30 0x70"}],
 "alert_rule_test": [at(46, "PaymentProbeNoRecentRun", []), at(47, "PaymentProbeNoRecentRun", [no_run("17m 0s")]),
                     at(90, "PaymentProbeNoRecentRun", [no_run("20m 0s")])]})
# 14. Never scraped at all (a prober deployed into a broken scrape, or crash-looping from its first pod):
#     pages once 20 minutes of nothing have passed since the rule's data began.
tests.append({"name": "never scraped", "interval": "1m", "input_series": [
    {"series": 'up{instance="a",job="payment-probe"}', "values": "0x60"}],
 "alert_rule_test": [at(21, "PaymentProbeNoRecentRun", [no_run("20m 0s")]), at(60, "PaymentProbeNoRecentRun", [no_run("20m 0s")])]})
# 15. A flag-off deployment: it exports enabled 0 and never runs: silent for ever. Turning the flag off on a
#     running prober is silent at once, although its last run grows old.
tests.append({"name": "flag off", "interval": "1m", "input_series": [
    {"series": 'instant_payment_probe_enabled{instance="a"}', "values": "1x30 0x90"},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="a"}',
     "values": " ".join(str(300 * (t // 5)) for t in range(31)) + " 1800" * 90}],
 "alert_rule_test": [at(t, "PaymentProbeNoRecentRun", []) for t in (40, 47, 50, 60, 90, 120)]})
# 16. A rollout: the old pod's series end at 30m, the new pod is scraped from 32m (enabled 1, last run 0
#     until its first run at 34m): silent throughout.
tests.append({"name": "rollout", "interval": "1m", "input_series": [
    *healthy_until(30, 80, "old"),
    {"series": 'instant_payment_probe_enabled{instance="new"}', "values": " ".join(["_"] * 32 + ["1"] * 49)},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{instance="new"}',
     "values": " ".join(["_"] * 32 + [str(0 if t < 34 else 2040 + 300 * ((t - 34) // 5)) for t in range(32, 81)])}],
 "alert_rule_test": [at(t, "PaymentProbeNoRecentRun", []) for t in (31, 33, 35, 40, 50, 60, 80)]})
# 17. Failures inside a maintenance window, and the first run after it passes: no page after the window.
#     (Case 11 is the other half: still failing after the window pages at once.)
tests.append({"name": "window closes, first run passes", "interval": "1m", "input_series": [
    {"series": S.format(i="a", leg="billing_state", r="fail"), "values": steps({21, 26, 31, 36, 41}, 70)},
    {"series": S.format(i="a", leg="billing_state", r="pass"), "values": steps({46, 51, 56, 61, 66}, 70)},
    {"series": 'instant_payment_probe_maintenance{instance="a"}', "values": "0x19 1x25 0x26"}],
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", []) for t in (22, 30, 44, 45, 46, 47, 50, 55, 60, 70)]})

# 18. A critical outcome of another leg (webhook_replay: replay_applied) pages critical at the scrape of that
#     run, survives a restart mid-incident, and resolves after its next run is not critical.
C = 'instant_payment_probe_critical_total{{instance="{i}",leg="{leg}"}}'
tests.append({"name": "replay applied: critical from any leg", "interval": "1m", "input_series": [
    {"series": C.format(i="a", leg="webhook_replay"), "values": steps({21}, 50)},
    {"series": S.format(i="a", leg="webhook_replay", r="fail"), "values": steps({21}, 50)},
    {"series": C.format(i="a", leg="upgrade_webhook_e2e"), "values": steps(set(), 50)}],
 "alert_rule_test": [at(20, "PaymentProbeWebhookSecurityFailing", []),
                     at(21, "PaymentProbeWebhookSecurityFailing", [security("webhook_replay")]),
                     at(26, "PaymentProbeWebhookSecurityFailing", [security("webhook_replay")]),
                     at(27, "PaymentProbeWebhookSecurityFailing", []),
                     at(21, "PaymentProbeLegFailing", [])]})
tests.append({"name": "critical across a restart", "interval": "1m", "input_series": [
    {"series": C.format(i="old", leg="webhook_replay"), "values": alive(steps({20, 25, 30}, 60), 0, 31)},
    {"series": C.format(i="new", leg="webhook_replay"), "values": " ".join(["_"] * 34 + steps({34, 38, 43, 48}, 60).split()[34:])}],
 "alert_rule_test": [at(t, "PaymentProbeWebhookSecurityFailing", [security("webhook_replay")]) for t in range(20, 50)]})

# ---- locations and confirmation (SPEC 11, 15) ----------------------------------------------------
L = 'instant_payment_probe_outcome_total{{instance="{i}",location="{loc}",leg="{leg}",result="{r}"}}'
CR = 'instant_payment_probe_confirm_retries{{instance="{i}",location="{loc}"}}'

def location_series(loc, fails, passes, end=60, confirm=2):
    """One location's runs of billing_state every 5 minutes from 1m: failing at `fails`, passing at `passes`."""
    i = f"pod-{loc}"
    return [{"series": L.format(i=i, loc=loc, leg="billing_state", r="fail"), "values": steps(set(fails), end)},
            {"series": L.format(i=i, loc=loc, leg="billing_state", r="pass"), "values": steps(set(passes), end)},
            {"series": CR.format(i=i, loc=loc), "values": f"{confirm}x{end}"}]

RUNS = set(range(1, 61, 5))  # 1, 6, 11, ... every location runs every slot
# 19. One location, confirmation on: the first confirmed failed run pages at its scrape (0 min after the run
#     that confirmed it; was 5 min, the second failed run, with confirmation off — case 1).
tests.append({"name": "one location, confirmation on: the first confirmed failure pages", "interval": "1m",
 "input_series": location_series("eu", {21, 26}, RUNS - {21, 26})
   + [reason_series("billing_state", "http_status:503", 60, location="eu", instance="pod-eu")],
 "alert_rule_test": [at(20, "PaymentProbeLegFailing", []),
                     at(21, "PaymentProbeLegFailing", [leg_failing("billing_state", 1, reason="http_status:503", location="eu")]),
                     at(26, "PaymentProbeLegFailing", [leg_failing("billing_state", 1, reason="http_status:503", location="eu")]),
                     at(32, "PaymentProbeLegFailing", []), at(21, "PaymentProbeLegFailingInOneLocation", [])]})
# 20. Two locations, confirmation on, one fails: a ticket naming it, no page. 21. Both fail: a page at the
#     scrape of the second location's confirmed failure, no ticket.
tests.append({"name": "two locations, one failing: ticket, no page", "interval": "1m",
 "input_series": location_series("eu", {21, 26, 31}, RUNS - {21, 26, 31}) + location_series("us", set(), RUNS),
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", []) for t in (21, 26, 31)]
   + [at(21, "PaymentProbeLegFailingInOneLocation", [one_location("billing_state", "eu")]),
      at(31, "PaymentProbeLegFailingInOneLocation", [one_location("billing_state", "eu")]),
      at(38, "PaymentProbeLegFailingInOneLocation", [])]})
tests.append({"name": "two locations, both failing: page", "interval": "1m",
 "input_series": location_series("eu", {21, 26, 31}, RUNS - {21, 26, 31}) + location_series("us", {23, 28}, RUNS - {21, 26, 31} | {51}),
 "alert_rule_test": [at(21, "PaymentProbeLegFailing", []), at(22, "PaymentProbeLegFailing", []),
                     at(23, "PaymentProbeLegFailing", [leg_failing("billing_state", 2)]),
                     at(23, "PaymentProbeLegFailingInOneLocation", []),
                     at(28, "PaymentProbeLegFailing", [leg_failing("billing_state", 2)])]})
# 22. Three locations: one failing is a ticket, two a page, all three a page.
three = location_series("eu", {21, 26, 31, 36}, RUNS - {21, 26, 31, 36}) + location_series("us", {33}, RUNS - {31}) \
    + location_series("ap", {36}, RUNS - {36})
tests.append({"name": "three locations: one, two, then all failing", "interval": "1m", "input_series": three,
 "alert_rule_test": [at(21, "PaymentProbeLegFailing", []), at(21, "PaymentProbeLegFailingInOneLocation", [one_location("billing_state", "eu")]),
                     at(33, "PaymentProbeLegFailing", [leg_failing("billing_state", 2)]),
                     at(36, "PaymentProbeLegFailing", [leg_failing("billing_state", 3)]),
                     at(34, "PaymentProbeLegFailingInOneLocation", [])]})
all3 = location_series("eu", {21}, RUNS - {21}) + location_series("us", {21}, RUNS - {21}) + location_series("ap", {21}, RUNS - {21})
tests.append({"name": "three locations all failing", "interval": "1m", "input_series": all3,
 "alert_rule_test": [at(21, "PaymentProbeLegFailing", [leg_failing("billing_state", 3)])]})
# 23. Two locations, confirmation off: 2 of 3 runs in each location before the page.
tests.append({"name": "two locations, confirmation off", "interval": "1m",
 "input_series": location_series("eu", {21, 26}, RUNS - {21, 26}, confirm=0) + location_series("us", {21, 26}, RUNS - {21, 26}, confirm=0),
 "alert_rule_test": [at(21, "PaymentProbeLegFailing", []), at(26, "PaymentProbeLegFailing", [leg_failing("billing_state", 2)])]})
# 24. A restart in one location mid-incident (its new pod's series start at 0): the page holds.
restart = location_series("us", {21, 26, 31, 36, 41}, RUNS - {21, 26, 31, 36, 41})
restart += [{"series": L.format(i="old-eu", loc="eu", leg="billing_state", r="fail"), "values": alive(steps({21, 26, 31}, 60), 0, 31)},
            {"series": L.format(i="new-eu", loc="eu", leg="billing_state", r="fail"), "values": " ".join(["_"] * 33 + steps({36, 41}, 60, 0).split()[33:])},
            {"series": CR.format(i="old-eu", loc="eu"), "values": alive("2 " * 61, 0, 31)},
            {"series": CR.format(i="new-eu", loc="eu"), "values": " ".join(["_"] * 33 + ["2"] * 28)}]
tests.append({"name": "a restart in one location mid-incident", "interval": "1m", "input_series": restart,
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", [leg_failing("billing_state", 2)]) for t in (21, 26, 31, 33, 36, 41)]})
# 25. A maintenance window over two failing locations: no page, the ticket may open.
maint = location_series("eu", {21, 26}, RUNS - {21, 26}) + location_series("us", {21, 26}, RUNS - {21, 26})
maint += [{"series": 'instant_payment_probe_maintenance{instance="pod-eu",location="eu"}', "values": "0x19 1x20 0x21"}]
tests.append({"name": "maintenance over two failing locations", "interval": "1m", "input_series": maint,
 "alert_rule_test": [at(t, "PaymentProbeLegFailing", []) for t in (21, 26, 30)]})
# 26. One location's pods gone: LocationSilent 17 min after its last run (a ticket); the other runs on, so no
#     NoRecentRun. Then every location gone: NoRecentRun.
def runs_until(loc, last, end):
    series = healthy_until(last, end, instance=f"pod-{loc}")
    for s in series:
        s["series"] = s["series"].replace("{", f'{{location="{loc}",', 1)
    return series
# 27. A location that exports enabled 1 but never runs (its lock never taken, its claims refused): silent
#     through its first 3 intervals, a ticket at 3 intervals + the for: (16 min after it appeared at 9), next to a
#     location that runs every slot (which never is).
tests.append({"name": "a location that never runs, next to one that runs", "interval": "1m",
 "input_series": runs_until("eu", 60, 60) + [
     {"series": 'instant_payment_probe_enabled{location="us",instance="pod-us"}', "values": "_x9 1x50"},
     {"series": 'instant_payment_probe_last_run_timestamp_seconds{location="us",instance="pod-us"}', "values": "_x9 0x50"}],
 "alert_rule_test": [at(t, "PaymentProbeLocationSilent", []) for t in (9, 12, 20, 24)]
   + [at(t, "PaymentProbeLocationSilent", [silent("us", "15m 0s")]) for t in (25, 40, 59)]})
# 27b. A new pod before its first run (it exports 0 for up to a minute) after runs in the last 15 min: not silent.
restarted = runs_until("eu", 60, 60) + runs_until("us", 20, 20) + [
    {"series": 'instant_payment_probe_enabled{location="us",instance="pod-us2"}', "values": "_x21 1x39"},
    {"series": 'instant_payment_probe_last_run_timestamp_seconds{location="us",instance="pod-us2"}',
     "values": "_x21 0 0 " + " ".join(str(60 * t) for t in range(24, 61))}]
tests.append({"name": "a restarted location before its first run", "interval": "1m", "input_series": restarted,
 "alert_rule_test": [at(t, "PaymentProbeLocationSilent", []) for t in (22, 23, 24, 40, 59)]})
tests.append({"name": "one location silent, then all", "interval": "1m",
 "input_series": runs_until("eu", 30, 100) + runs_until("us", 60, 100),
 "alert_rule_test": [at(46, "PaymentProbeLocationSilent", []), at(47, "PaymentProbeLocationSilent", [silent("eu", "17m 0s")]),
                     at(47, "PaymentProbeNoRecentRun", []),
                     at(77, "PaymentProbeNoRecentRun", [no_run("17m 0s")]),
                     at(77, "PaymentProbeLocationSilent", [])]})

doc = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests}
text = ("# promtool test rules alerts_test.yml — each alert fires when it must and stays silent when it must not,\n"
        "# across restarts, rollouts, crash loops and maintenance windows. Runs every 5 minutes, scrapes every minute.\n"
        + yaml.safe_dump(doc, sort_keys=False, width=10_000))
open(sys.argv[1], "w").write(text)
