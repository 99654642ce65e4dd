-- +goose Up
-- The box accounts (accounts_pg.go): one row per box that has a password,
-- a slot count or a certificate from the bridge's CA.
CREATE TABLE bridge_box_accounts (
    box_id        text PRIMARY KEY,
    password_hash text,                       -- bcrypt; NULL: no password
    slots         integer,                    -- NULL: never given
    cert          jsonb                       -- boxCert; NULL: none issued
);

-- The service's secrets (secrets_pg.go), shared by every replica: the
-- signing key the boxes trust, the CA, the admin token. Each is made once,
-- by the first replica to start, and never changed by a start.
CREATE TABLE bridge_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
