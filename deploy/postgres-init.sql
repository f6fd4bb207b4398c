-- Run once by the postgres image on an empty volume (docker-compose), with
-- psql, as the superuser POSTGRES_USER in POSTGRES_DB (the gateway's target
-- database). Only the ledger side (the projector) logs in as the
-- superuser; each login the gateway holds reaches one database and no more.
--
-- The projector's database, apart from the target database, so that
-- nobody who reaches the target through the proxy reaches the projection.
CREATE DATABASE projection;

-- The gateway's PostgreSQL proxy logs in as "gateway": it owns the target
-- database (its tables, so that a dba's statements through the proxy work)
-- and may connect to no other.
CREATE ROLE gateway LOGIN PASSWORD 'gateway-local' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE auditledger OWNER TO gateway;

-- The gateway's API reads the projection as "reader": SELECT only.
CREATE ROLE reader LOGIN PASSWORD 'reader-local' NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- No database but its own is open to either.
REVOKE CONNECT, TEMPORARY ON DATABASE projection FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE auditledger FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE auditledger TO gateway;
GRANT CONNECT ON DATABASE projection TO reader;

-- The projector (the superuser) creates the projection's tables; the
-- reader may read each, present and future.
\connect projection
GRANT USAGE ON SCHEMA public TO reader;
ALTER DEFAULT PRIVILEGES FOR ROLE auditledger IN SCHEMA public GRANT SELECT ON TABLES TO reader;
