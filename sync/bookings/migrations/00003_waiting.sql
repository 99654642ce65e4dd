-- The waiting index (sync/bookings store_pg.go, store_live.go): the box
-- whose status each booking waits for, so that a box's status reads that
-- box's waiting bookings and not every booking kept (a fleet keeps tens of
-- thousands, ended ones included).
--
-- waiting_box is written by the bridge from the booking it stores (Go's
-- waitingFor), not computed from doc: doc is json that may hold \u0000
-- (see 00001), which jsonb, and so any expression index over it, refuses;
-- and the rule of what waits stays in one place. '': the booking waits for
-- no box; NULL: not yet known, a row stored before this migration, which
-- OpenPostgresStore fills in from its document (only where still NULL, so
-- a replica's write meanwhile stands).

-- +goose Up
ALTER TABLE bookings_bookings ADD COLUMN waiting_box text COLLATE "C";
CREATE INDEX bookings_bookings_waiting ON bookings_bookings (waiting_box, assignment_id) WHERE waiting_box <> '';
CREATE INDEX bookings_bookings_waiting_unknown ON bookings_bookings (assignment_id) WHERE waiting_box IS NULL;

-- +goose Down
DROP INDEX bookings_bookings_waiting_unknown;
DROP INDEX bookings_bookings_waiting;
ALTER TABLE bookings_bookings DROP COLUMN waiting_box;
