-- The bookings of one box (waitingGrants: every status a box sends looks
-- up its bookings waiting to go live), by an index on the document's
-- box_id instead of a read of every booking: with 1,000 bookings a status
-- read and decoded them all, and a burst's statuses made the replicas
-- spend their CPU there while grants waited.

-- +goose Up
CREATE INDEX bookings_bookings_box ON bookings_bookings ((doc->>'box_id'));

-- +goose Down
DROP INDEX bookings_bookings_box;
