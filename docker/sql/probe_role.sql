-- Least privilege for the prober (run as the owner of `teams`, after `payment-probe migrate`).
--
-- The prober may: insert rows into audit_log (the hourly roll-up is kept by the owner's trigger)
-- and read them back for /status; use its leadership table; read maintenance windows; read,
-- insert and delete cohort teams only. It may never update a team, row-level security makes a
-- DELETE that names any other row (however it is crafted) delete nothing, and it cannot read a
-- customer's team at all (it only ever polls its own cohort rows).
--
-- Set the password out of band:  ALTER ROLE payment_probe PASSWORD '...';

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payment_probe') THEN
    CREATE ROLE payment_probe LOGIN NOINHERIT;
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO payment_probe;
GRANT SELECT, INSERT ON audit_log TO payment_probe;
GRANT SELECT ON audit_log_hourly TO payment_probe;
GRANT SELECT ON payment_probe_maintenance TO payment_probe;
GRANT SELECT, INSERT, DELETE ON payment_probe_slots TO payment_probe;
-- Locations other than `local` take their leadership lock's number here (registered on first use).
GRANT SELECT, INSERT ON payment_probe_locations TO payment_probe;
GRANT SELECT, INSERT, DELETE ON teams TO payment_probe;
REVOKE UPDATE, TRUNCATE ON teams FROM payment_probe;

ALTER TABLE teams ENABLE ROW LEVEL SECURITY;

-- Every other non-owner role keeps seeing and changing teams exactly as before.
DROP POLICY IF EXISTS payment_probe_others_unchanged ON teams;
CREATE POLICY payment_probe_others_unchanged ON teams
  USING (current_user <> 'payment_probe') WITH CHECK (current_user <> 'payment_probe');

-- The prober reads its cohort teams only (it polls its cohort team's tier); customers' teams,
-- names included, are invisible to it.
DROP POLICY IF EXISTS payment_probe_read ON teams;
CREATE POLICY payment_probe_read ON teams FOR SELECT TO payment_probe
  USING (is_test_cohort AND starts_with(name, 'payment-probe-cohort-'));

-- It inserts only hobby-tier cohort teams under its own name prefix.
DROP POLICY IF EXISTS payment_probe_insert_cohort ON teams;
CREATE POLICY payment_probe_insert_cohort ON teams FOR INSERT TO payment_probe
  WITH CHECK (is_test_cohort AND starts_with(name, 'payment-probe-cohort-') AND plan_tier = 'hobby');

-- It deletes only cohort teams; RESTRICTIVE, so no permissive policy can widen it.
DROP POLICY IF EXISTS payment_probe_delete_cohort ON teams;
CREATE POLICY payment_probe_delete_cohort ON teams FOR DELETE TO payment_probe
  USING (is_test_cohort AND starts_with(name, 'payment-probe-cohort-'));
DROP POLICY IF EXISTS payment_probe_delete_cohort_only ON teams;
CREATE POLICY payment_probe_delete_cohort_only ON teams AS RESTRICTIVE FOR DELETE TO payment_probe
  USING (is_test_cohort AND starts_with(name, 'payment-probe-cohort-'));
