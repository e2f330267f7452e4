"""The audit store: the table's shape, its migration, indexes and hourly roll-up (SPEC 4, 13).

Apart from the audit sink (``runner.signals.audit``, which writes rows and spools them): the sink,
``payment-probe migrate``, the leg history and the status page all read the table through the
names here. The table name is always quoted as an identifier (``schema.table`` too), never pasted
into SQL.
"""

from __future__ import annotations

import logging
from typing import Any

from synthetics import db
from synthetics.secret import Secret

log = logging.getLogger("payment_probe.audit")

REQUIRED_COLUMNS = (
    "id", "created_at", "actor", "action", "run_id", "leg", "result", "severity", "reason",
    "latency_ms", "environment", "metadata", "location",
)
# The types each column may have in an existing table; anything else rejects every insert.
TEXT = frozenset({"text", "character varying", "character"})
COLUMN_TYPES: dict[str, frozenset[str]] = {
    "id": frozenset({"uuid"}) | TEXT,
    "created_at": frozenset({"timestamp with time zone", "timestamp without time zone"}),
    "latency_ms": frozenset({"double precision", "real", "numeric"}),
    "metadata": frozenset({"jsonb", "json"}),
    **{name: TEXT for name in ("actor", "action", "run_id", "leg", "result", "severity", "reason", "environment",
                               "location")},
}


class AuditSchemaError(RuntimeError):
    """The audit table (or the role's rights on it) cannot take the probe's rows: exit 2 at start."""


def table_identifier(table: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*table.split("."))


def create_table_sql(table: str) -> Any:
    from psycopg import sql

    return sql.SQL("""
CREATE TABLE IF NOT EXISTS {table} (
  id          uuid PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  action      text NOT NULL,
  run_id      text NOT NULL,
  leg         text NOT NULL,
  result      text NOT NULL,
  severity    text NOT NULL,
  reason      text NOT NULL,
  latency_ms  double precision,
  environment text,
  metadata    jsonb NOT NULL DEFAULT '{{}}'::jsonb,
  location    text
)""").format(table=table_identifier(table))


def index_sql(table: str) -> list[Any]:
    """History by leg and time (the status page's walks), by leg, result and time (since when a
    state holds: one index lookup per result, never a scan of a leg whose result never changed),
    and the failures alone (its incidents)."""
    from psycopg import sql

    base = table.split(".")[-1][:40]
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, result, created_at)").format(
            name=sql.Identifier(base + "_leg_result_idx"), table=table_identifier(table)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, created_at)").format(
            name=sql.Identifier(base + "_leg_created_at_idx"), table=table_identifier(table)),
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, created_at) WHERE result = 'fail'").format(
            name=sql.Identifier(base + "_fail_idx"), table=table_identifier(table)),
        # The status page shows one environment: with it in the index, "the run before this one" is
        # one backward index step. With it only filtered (IS NOT DISTINCT FROM, which the planner
        # estimates as matching one row) each step sorted the leg's whole history: 7.9 s at 181,440
        # rows, past the statement timeout, so the page always fell back to "history unavailable".
        sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {table} (leg, (coalesce(environment, '')), created_at)").format(
            name=sql.Identifier(base + "_leg_env_idx"), table=table_identifier(table)),
    ]


def hourly_table(table: str) -> str:
    """The hourly roll-up beside the audit table (Gatus's ``endpoint_uptimes``): ``<table>_hourly``."""
    return f"{table}_hourly"


def rollup_sql(conn: Any, table: str, schema: str) -> list[Any]:
    """One row per leg per UTC hour, kept by a trigger on every insert (spool replays, any writer):
    30-day uptime reads ~4,300 rows instead of ~52,000. The trigger runs as its owner, so the
    probe's own role needs nothing beyond INSERT on the audit table."""
    from psycopg import sql

    name = table.split(".")[-1]
    qualified = table if "." in table else f"{schema}.{table}"
    hourly = table_identifier(hourly_table(qualified))
    function = table_identifier(f"{qualified.rsplit('.', 1)[0]}.{name[:40]}_hourly_fn")
    body = sql.SQL("""
BEGIN
  INSERT INTO {hourly} AS h (leg, environment, hour, runs, up, fails, degraded)
  VALUES (NEW.leg, coalesce(NEW.environment, ''), date_trunc('hour', NEW.created_at AT TIME ZONE 'UTC'), 1,
          (NEW.result IN ('pass', 'degraded'))::int, (NEW.result = 'fail')::int, (NEW.result = 'degraded')::int)
  ON CONFLICT (leg, environment, hour) DO UPDATE SET runs = h.runs + 1, up = h.up + EXCLUDED.up,
    fails = h.fails + EXCLUDED.fails, degraded = h.degraded + EXCLUDED.degraded;
  RETURN NULL;
END""").format(hourly=hourly)
    return [
        # A roll-up from before environments were kept apart is derived data: rebuilt from the rows.
        sql.SQL("DROP TABLE IF EXISTS {hourly}").format(hourly=hourly),
        sql.SQL("""CREATE TABLE IF NOT EXISTS {hourly} (
  leg text NOT NULL, environment text NOT NULL DEFAULT '', hour timestamp NOT NULL,
  runs integer NOT NULL, up integer NOT NULL, fails integer NOT NULL, degraded integer NOT NULL,
  PRIMARY KEY (leg, environment, hour))""").format(hourly=hourly),
        sql.SQL("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
                "SET search_path = pg_catalog AS {body}").format(fn=function, body=sql.Literal(body.as_string(conn))),
        sql.SQL("DROP TRIGGER IF EXISTS {trigger} ON {table}").format(
            trigger=sql.Identifier(f"{name[:40]}_hourly_trg"), table=table_identifier(table)),
        sql.SQL("CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()").format(
            trigger=sql.Identifier(f"{name[:40]}_hourly_trg"), table=table_identifier(table), fn=function),
        # Backfill what the table already holds (an audit table from before the roll-up).
        sql.SQL("""INSERT INTO {hourly} (leg, environment, hour, runs, up, fails, degraded)
SELECT leg, coalesce(environment, ''), date_trunc('hour', created_at AT TIME ZONE 'UTC'), count(*),
       count(*) FILTER (WHERE result IN ('pass', 'degraded')), count(*) FILTER (WHERE result = 'fail'),
       count(*) FILTER (WHERE result = 'degraded')
FROM {table} GROUP BY 1, 2, 3""").format(hourly=hourly, table=table_identifier(table)),
    ]


def regclass(conn: Any, table: str) -> Any:
    """The table's oid, or None; the name is quoted exactly as the inserts quote it."""
    return conn.execute("SELECT to_regclass(%s)", (table_identifier(table).as_string(conn),)).fetchone()[0]


def migrate(database_url: Secret, table: str) -> None:
    """Create the audit table if missing; refuse an existing one the probe cannot write.

    Raises ``AuditSchemaError`` naming the column, type or privilege; a connection error
    propagates (the caller treats it as an outage).
    """
    variable = "PAYMENT_PROBE_AUDIT_TABLE"
    with db.session(database_url) as conn:
        try:
            if regclass(conn, table) is None:
                # Create only when missing: a least-privilege role may insert but not CREATE.
                conn.execute(create_table_sql(table))
                for statement in index_sql(table):
                    conn.execute(statement)
        except Exception as exc:
            if db.is_permanent(exc):
                raise AuditSchemaError(f"{variable}: cannot create table {table} ({db.describe(exc)})") from None
            raise
        ensure_rollup(conn, table)
        _add_location(conn, table)
        schema, _, name = table.rpartition(".")
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = coalesce(nullif(%s, ''), current_schema())",
            (name, schema),
        ).fetchall()
        can_insert = conn.execute(
            "SELECT has_table_privilege(%s::regclass, 'INSERT')", (table_identifier(table).as_string(conn),)
        ).fetchone()[0]
    present = {r[0]: r[1] for r in rows}
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise AuditSchemaError(f"{variable}: table {table} lacks columns {', '.join(missing)}")
    wrong = [f"{c} is {present[c]}" for c in REQUIRED_COLUMNS if present[c] not in COLUMN_TYPES[c]]
    if wrong:
        raise AuditSchemaError(f"{variable}: table {table} has columns of the wrong type: {'; '.join(wrong)}")
    if not can_insert:
        raise AuditSchemaError(f"{variable}: the database role lacks INSERT on table {table}")


def _add_location(conn: Any, table: str) -> None:
    """An audit table from before locations gains its ``location`` column (SPEC 15), when this role
    may; otherwise the column check below names it (run ``payment-probe migrate`` as the owner)."""
    from psycopg import sql

    present = conn.execute("SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'location' "
                           "AND NOT attisdropped", (table_identifier(table).as_string(conn),)).fetchone()
    if present:
        return  # no ALTER (and its lock) on every start
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS location text").format(
                table=table_identifier(table)))
    except Exception as exc:
        if not db.is_permanent(exc):
            raise


def ensure_rollup(conn: Any, table: str) -> None:
    """Create the hourly roll-up (and the indexes) once, when this role may; without it the status
    page shows current states and incidents but no uptime figures (logged, never fatal)."""
    hourly = regclass(conn, hourly_table(table))
    schema_prefix, _, name = table.rpartition(".")
    by_result = regclass(conn, f"{schema_prefix + '.' if schema_prefix else ''}{name[:40]}_leg_result_idx")
    if by_result is not None and hourly is not None and conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'environment' AND NOT attisdropped",
        (hourly,),
    ).fetchone():
        return  # current: roll-up by environment, and the index the status page's "since" walks
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    try:
        with conn.transaction():
            for statement in [*index_sql(table), *rollup_sql(conn, table, schema)]:
                conn.execute(statement)
    except Exception as exc:
        if not db.is_permanent(exc):
            raise
        log.warning("hourly roll-up of %s not created (%s): the status page will show no uptime figures "
                    "until `payment-probe migrate` runs as the table's owner", table, db.describe(exc))
