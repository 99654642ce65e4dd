-- The Fleetio integration's store on PostgreSQL (sync/bookings,
-- store_pg.go). Each record is the JSON document the bbolt engine stores, in
-- a doc column, beside the columns its lookups, order and locking need: a
-- field added to a Go struct needs no migration.
--
-- doc is json, not jsonb: jsonb refuses the \u0000 escape Go writes for a
-- NUL in a string (a box event's detail, a name from Fleetio), which would
-- fail the transaction and stall what comes behind it; json keeps the
-- document byte for byte as the bbolt engine does.
--
-- Text keys are COLLATE "C" so that they sort by bytes, as bbolt's keys do,
-- whatever the database's locale.

-- +goose Up
CREATE TABLE bookings_meta (
    name  text PRIMARY KEY,
    value bytea NOT NULL -- seal_key: the AES-256 key that seals PINs and driver codes
);

-- One row: the connection settings (NULL: not connected) and the code mode
-- ('' for the default), which a disconnect keeps.
CREATE TABLE bookings_settings (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    connection json,
    code_mode  text NOT NULL DEFAULT ''
);
INSERT INTO bookings_settings DEFAULT VALUES;

CREATE TABLE bookings_boxes (
    box_id text COLLATE "C" PRIMARY KEY,
    doc    json NOT NULL
);

CREATE TABLE bookings_links (
    vehicle_id bigint PRIMARY KEY,
    doc        json NOT NULL
);

-- Webhook deliveries and the bridge's own (ids from internalDeliveryBase
-- plus bookings_internal_delivery_seq). The primary key de-duplicates
-- Fleetio's delivery ids across replicas. queued: still to process, in id
-- order, at due (NextAttempt; NULL: at once). claimed_by/claimed_until: the
-- replica working on it and until when its claim holds (Store.ClaimDue, FOR
-- UPDATE SKIP LOCKED); an update of the delivery ends the claim.
CREATE TABLE bookings_deliveries (
    id            bigint PRIMARY KEY,
    doc           json NOT NULL,
    queued        boolean NOT NULL,
    due           timestamptz,
    claimed_by    text,
    claimed_until timestamptz
);
CREATE INDEX bookings_deliveries_queue ON bookings_deliveries (id) WHERE queued;
CREATE SEQUENCE bookings_internal_delivery_seq;

CREATE TABLE bookings_bookings (
    assignment_id bigint PRIMARY KEY,
    doc           json NOT NULL
);

-- Access tokens by their SHA-256: the database holds no token that opens a page.
CREATE TABLE bookings_tokens (
    token_hash    bytea PRIMARY KEY,
    assignment_id bigint NOT NULL
);

CREATE TABLE bookings_prompts (
    assignment_id bigint PRIMARY KEY,
    doc           json NOT NULL
);

CREATE TABLE bookings_drivers (
    contact_id bigint PRIMARY KEY,
    doc        json NOT NULL
);

-- Box events tied to bookings; box_id '' for the bridge's own.
CREATE TABLE bookings_watch_events (
    assignment_id bigint NOT NULL,
    box_id        text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    doc           json NOT NULL,
    PRIMARY KEY (assignment_id, box_id, seq)
);

-- The booking whose driver took a key out and has not returned it.
CREATE TABLE bookings_watch_holders (
    box_id        text COLLATE "C" NOT NULL,
    key_id        text COLLATE "C" NOT NULL,
    assignment_id bigint NOT NULL,
    PRIMARY KEY (box_id, key_id)
);

CREATE TABLE bookings_watch_overdue (
    assignment_id bigint PRIMARY KEY,
    doc           json NOT NULL
);

-- The highest event seq of a box handled, with none missing before it.
CREATE TABLE bookings_watch_seen (
    box_id text COLLATE "C" PRIMARY KEY,
    seq    bigint NOT NULL
);

CREATE TABLE bookings_watch_alerts (
    kind    text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    doc     json NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE TABLE bookings_watch_returns (
    box_id text COLLATE "C" NOT NULL,
    key_id text COLLATE "C" NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, key_id)
);

-- +goose Down
DROP TABLE bookings_watch_returns, bookings_watch_alerts, bookings_watch_seen, bookings_watch_overdue,
    bookings_watch_holders, bookings_watch_events, bookings_drivers, bookings_prompts, bookings_tokens,
    bookings_bookings, bookings_deliveries, bookings_links, bookings_boxes, bookings_settings, bookings_meta;
DROP SEQUENCE bookings_internal_delivery_seq;
