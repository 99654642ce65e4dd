-- +goose Up
-- The rounds of periodic work (rounds_pg.go): which replica took the
-- latest round of each job. A round is a window of the job's interval on
-- the database's clock, so replicas with skewed clocks agree on it.
CREATE TABLE bridge_rounds (
    job      text PRIMARY KEY,
    round    bigint NOT NULL,      -- floor(epoch seconds / interval seconds)
    holder   text NOT NULL,        -- the replica that took it
    taken_at timestamptz NOT NULL
);
