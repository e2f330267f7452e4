"""pytest wiring for the legs: options, markers, the leg timeout and the fixtures every leg shares.

Loaded by the repository's ``conftest.py`` (laptop and CI gate) and by the runner with
``-p synthetics.plugin``; it knows nothing of signals, which are the signals plugin's job.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from synthetics import cohort, db, reasons
from synthetics.config import ConfigError, ProbeConfig, load_config
from synthetics.failures import LegFailed, degrade, not_critical
from synthetics.http import ProbeClient
from synthetics.leg_report import DETAIL_PREFIX, LATENCY_KEY, PHASE_PREFIX
from synthetics.registry import leg_for_test
from synthetics.run import RUN_KEY, RunContext, fresh_run_id
from synthetics.secret import Secret

CONFIG_KEY = pytest.StashKey[ProbeConfig]()

HELP_BASE_URL = "billing API base URL (overrides PAYMENT_PROBE_BASE_URL)"
HELP_API_TOKEN = "bearer token of the probe's account (overrides PAYMENT_PROBE_API_TOKEN)"
HELP_DATABASE_URL = "Postgres URL for cohort teams (overrides PAYMENT_PROBE_DATABASE_URL)"
HELP_RUN_ID = "run id carried by every outcome and cohort team (default: a fresh random id)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("payment-probe", "payment-probe legs")
    # pytest-base-url, when installed, owns --base-url (it registers it too, and a second one is an
    # error whichever plugin loads first): its value is read then (base_url_option).
    if not _pytest_base_url_loads():
        with contextlib.suppress(ValueError):  # it was registered first after all
            group.addoption("--base-url", dest="probe_base_url", default=None, help=HELP_BASE_URL)
    group.addoption("--api-token", dest="probe_api_token", default=None, help=HELP_API_TOKEN)
    group.addoption("--database-url", dest="probe_database_url", default=None, help=HELP_DATABASE_URL)
    group.addoption("--run-id", dest="probe_run_id", default=None, help=HELP_RUN_ID)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prod_safe: non-charging, contract-only leg, safe against production")
    config.addinivalue_line(
        "markers", "upgrade: TEST-mode money-path leg; needs the database and the TEST webhook secret")
    # The runner hands in an already validated config (ProvidedConfig); others read the env.
    if CONFIG_KEY not in config.stash:
        config.stash[CONFIG_KEY] = _config_from_options(config)
    # The run id is decided once on the controller (the runner's run context, --run-id, or fresh);
    # xdist ships option values to its workers, so every worker makes its own run context with the
    # same id and stamps it on its outcomes and cohort teams.
    provided = config.stash.get(RUN_KEY, None)
    if provided is not None:
        config.option.probe_run_id = provided.run_id
        return
    if not config.option.probe_run_id:
        config.option.probe_run_id = fresh_run_id()
    config.stash[RUN_KEY] = RunContext(config.option.probe_run_id)


def _config_from_options(config: pytest.Config) -> ProbeConfig:
    try:
        return load_config(
            base_url=base_url_option(config),
            api_token=config.option.probe_api_token,
            database_url=config.option.probe_database_url,
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _pytest_base_url_loads() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    try:
        return importlib.util.find_spec("pytest_base_url") is not None
    except (ImportError, ValueError):
        return False


def base_url_option(config: pytest.Config) -> str | None:
    """``--base-url``: ours, or pytest-base-url's when that plugin owns the option (dest ``base_url``)."""
    return getattr(config.option, "probe_base_url", None) or getattr(config.option, "base_url", None) or None


class ProvidedConfig:
    """Hands an already-validated config to a session, so the runner reads the env only once, and the
    run's context (its id, a maintenance window open): the session carries them, no plugin is poked."""

    def __init__(self, probe_config: ProbeConfig, run: RunContext | None = None) -> None:
        self.probe_config = probe_config
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[CONFIG_KEY] = self.probe_config
        if self.run is not None:
            config.stash[RUN_KEY] = self.run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the legs the config does not run (PAYMENT_PROBE_LEGS, the runner's tick); give every leg
    the leg timeout, signal method: finalizers (the reap) still run after it.

    Under plain pytest's ``--reruns`` each leg also gets a rerun condition: an attempt that ended
    critical is the outcome at once, never retried into a pass (SPEC 15)."""
    probe_config = config.stash[CONFIG_KEY]
    left_out = [item for item in items if (leg := leg_for_test(getattr(item, "originalname", item.name))) is not None
                and leg.name not in probe_config.legs]
    if left_out:  # PAYMENT_PROBE_LEGS (or the runner's tick) leaves them out: no outcome, no series
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    seconds = probe_config.leg_timeout_seconds
    reruns = getattr(config.option, "reruns", None) or 0
    for item in items:
        name = getattr(item, "originalname", item.name)
        if leg_for_test(name) is None:
            continue
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(seconds, method="signal"))
        if reruns and item.get_closest_marker("flaky") is None:
            delay = getattr(config.option, "reruns_delay", None) or 0
            item.add_marker(pytest.mark.flaky(reruns=reruns, reruns_delay=delay, condition=not_critical))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each retry is a fresh attempt (SPEC 15), which pytest's two plugins do not make it on their own.

    pytest-timeout arms one alarm around pytest-rerunfailures' whole protocol and cancels it when
    the first attempt fails (``pytest_exception_interact``): a retry would run with no leg timeout at
    all. So every retry's setup arms the leg timer again. And the item's ``user_properties`` (where a
    leg notes its latency, phases and details) outlive an attempt: a retry starts them empty, so a
    retry that got no answer never reports the first attempt's latency.
    """
    if int(getattr(item, "execution_count", 1)) <= 1 or leg_for_test(getattr(item, "originalname", item.name)) is None:
        return
    item.user_properties = []
    timeout_plugin = item.config.pluginmanager.getplugin("timeout")
    settings_of = getattr(timeout_plugin, "_get_item_settings", None)
    if settings_of is None:
        return
    settings = settings_of(item)
    if settings.timeout:
        item.ihook.pytest_timeout_cancel_timer(item=item)
        item.ihook.pytest_timeout_set_timer(item=item, settings=settings)


class LegRecord:
    """What a leg attaches to its report: network time by phase and plain detail xdist can ship."""

    def __init__(self, item: pytest.Item) -> None:
        self._properties = item.user_properties
        self.latency_seconds: float | None = None
        self.phases: dict[str, float] = {}

    def add_phases(self, phases: Mapping[str, float], answered: bool) -> None:
        """Sum an exchange's phases into the leg's; latency counts once a response arrived."""
        for name, seconds in phases.items():
            self.phases[name] = self.phases.get(name, 0.0) + seconds
            self._replace(f"{PHASE_PREFIX}{name}", round(self.phases[name], 6))
        if answered or self.latency_seconds is not None:
            self.set_latency(sum(self.phases.values()))

    def set_latency(self, seconds: float) -> None:
        self.latency_seconds = seconds
        self._replace(LATENCY_KEY, round(seconds, 6))

    def note(self, key: str, value: str | int | float | bool) -> None:
        self._replace(f"{DETAIL_PREFIX}{key}", value)

    def _replace(self, key: str, value: Any) -> None:
        self._properties[:] = [(k, v) for k, v in self._properties if k != key]
        self._properties.append((key, value))


@pytest.fixture
def probe_config(request: pytest.FixtureRequest) -> ProbeConfig:
    return request.config.stash[CONFIG_KEY]


@pytest.fixture
def run_context(request: pytest.FixtureRequest) -> RunContext:
    return request.config.stash[RUN_KEY]


@pytest.fixture
def run_id(run_context: RunContext) -> str:
    return run_context.run_id


@pytest.fixture
def leg_record(request: pytest.FixtureRequest) -> LegRecord:
    return LegRecord(request.node)


@pytest.fixture
def probe_http(probe_config: ProbeConfig, leg_record: LegRecord, run_context: RunContext) -> ProbeClient:
    """Every exchange opens and closes its own connection: nothing to release afterwards."""
    if not probe_config.base_url:
        degrade(reasons.config_missing("PAYMENT_PROBE_BASE_URL"))
    return ProbeClient(probe_config, on_phases=leg_record.add_phases, spans=run_context.spans)


def require_settings(*settings: tuple[str, object]) -> None:
    """A leg runs only with its settings: the first one unset ends it ``degraded config_missing:<VARIABLE>``."""
    for variable, value in settings:
        if not value:
            degrade(reasons.config_missing(variable))


@dataclass(frozen=True)
class UpgradeSettings:
    """The upgrade leg's settings; the two secrets stay ``Secret`` (a test argument is printed)."""

    database_url: Secret
    webhook_secret: Secret
    plan_id: str


@pytest.fixture
def upgrade_settings(probe_config: ProbeConfig) -> UpgradeSettings:
    """The upgrade leg's three variables; the first missing one names the ``degraded`` reason."""
    from synthetics.providers import PROVIDERS

    require_settings(
        ("PAYMENT_PROBE_DATABASE_URL", probe_config.database_url),
        (PROVIDERS[probe_config.provider].secret_variable, probe_config.webhook_secret),
        ("PAYMENT_PROBE_TEST_PLAN_ID_PRO", probe_config.test_plan_id_pro),
    )
    assert probe_config.database_url and probe_config.webhook_secret and probe_config.test_plan_id_pro
    return UpgradeSettings(
        probe_config.database_url, probe_config.webhook_secret, probe_config.test_plan_id_pro
    )


@dataclass(frozen=True)
class RoundtripSettings:
    """provider_roundtrip's settings (SPEC 17): the database, the Stripe TEST key, the test price."""

    database_url: Secret
    plan_id: str


@pytest.fixture
def roundtrip_settings(probe_config: ProbeConfig) -> RoundtripSettings:
    """The round trip's variables; the first missing one names the ``degraded`` reason."""
    require_settings(
        ("PAYMENT_PROBE_DATABASE_URL", probe_config.database_url),
        ("PAYMENT_PROBE_PROVIDER_TEST_KEY", probe_config.provider_test_key),
        ("PAYMENT_PROBE_TEST_PLAN_ID_PRO", probe_config.test_plan_id_pro),
    )
    assert probe_config.database_url and probe_config.test_plan_id_pro
    return RoundtripSettings(probe_config.database_url, probe_config.test_plan_id_pro)


@dataclass
class CohortTeam:
    id: str
    connection: Any


@pytest.fixture
def cohort_team(
    upgrade_settings: UpgradeSettings, run_id: str, leg_record: LegRecord
) -> Iterator[CohortTeam]:
    """Mint a hobby-tier cohort team and always reap it, on every path including a timeout."""
    yield from _cohort_team(upgrade_settings.database_url, run_id, leg_record)


@pytest.fixture
def roundtrip_team(roundtrip_settings: RoundtripSettings, run_id: str, leg_record: LegRecord) -> Iterator[CohortTeam]:
    """The round trip's cohort team: minted and always reaped like the upgrade leg's."""
    yield from _cohort_team(roundtrip_settings.database_url, run_id, leg_record)


def _cohort_team(database_url: Secret, run_id: str, leg_record: LegRecord) -> Iterator[CohortTeam]:
    try:
        conn = db.connect(database_url)
    except Exception as exc:
        degrade(reasons.MINT_FAILED, f"database unreachable ({type(exc).__name__})")
    try:
        with db.guard(conn):
            team_id = cohort.mint(conn, run_id)
    except Exception as exc:
        conn.close()
        degrade(reasons.MINT_FAILED, f"insert into teams failed ({type(exc).__name__})")
    leg_record.note("cohort_team_id", team_id)
    team = CohortTeam(team_id, conn)
    try:
        yield team
    finally:
        _reap(database_url, team)


def _reap(database_url: Secret, team: CohortTeam) -> None:
    """Delete the team; if the leg's connection broke, try once more on a fresh one.

    A reap that deletes no row while the team still exists (it is no longer a cohort row, or
    row-level security hides it from the DELETE) left it behind: that is ``reap_failed`` too.
    """
    deleted: int | None = None
    try:
        with db.guard(team.connection):
            deleted = cohort.reap(team.connection, team.id)
            left = deleted == 0 and cohort.still_exists(team.connection, team.id)
    except Exception:
        left = False
    finally:
        team.connection.close()
    if deleted is None:
        try:
            with db.session(database_url) as conn:
                deleted = cohort.reap(conn, team.id)
                left = deleted == 0 and cohort.still_exists(conn, team.id)
        except Exception as exc:
            raise LegFailed(reasons.REAP_FAILED, f"cohort team {team.id} left behind ({type(exc).__name__})") from None
    if left:
        raise LegFailed(reasons.REAP_FAILED, f"cohort team {team.id} still exists: the reap deleted no row")
