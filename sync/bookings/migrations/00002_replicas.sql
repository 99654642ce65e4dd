-- Replicas sharing one database (sync/bookings store_pg.go, claims.go,
-- budget_pg.go).
--
-- assignment_id: the assignment a delivery is about (-id for a body that
-- names none), so that a claim can refuse a delivery whose assignment
-- another replica is processing, and keep an assignment's deliveries in
-- id order across replicas. Written by putDelivery; OpenPostgresStore
-- fills it in for the rows queued before this migration.
--
-- bookings_budgets: a Fleetio request budget shared by the replicas
-- (PostgresBudget): the tokens left at updated_at (refilled from the
-- database's clock at each take) and the pause a 429's Retry-After asked
-- for.

-- +goose Up
ALTER TABLE bookings_deliveries ADD COLUMN assignment_id bigint;
CREATE INDEX bookings_deliveries_assignment ON bookings_deliveries (assignment_id, id) WHERE queued;

CREATE TABLE bookings_budgets (
    name         text COLLATE "C" PRIMARY KEY,
    tokens       double precision NOT NULL,
    updated_at   timestamptz NOT NULL,
    paused_until timestamptz
);

-- +goose Down
DROP TABLE bookings_budgets;
DROP INDEX bookings_deliveries_assignment;
ALTER TABLE bookings_deliveries DROP COLUMN assignment_id;
