-- The cloud's store on PostgreSQL: the tables of store_pg.go, one row per
-- record of the bbolt layout (see the package doc). Ids are compared and
-- ordered byte by byte (COLLATE "C"), as bbolt orders its keys, whatever
-- the database's locale. Documents are json, not jsonb: json keeps the
-- bytes the cloud wrote (it compares a key put with the one stored by
-- them) and takes any string a box may send, \u0000 included.

-- +goose Up
CREATE TABLE cloud_meta (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- One row per box: its meta. Every update of a box locks its row first
-- (SELECT ... FOR UPDATE), which serialises the box's revisions across
-- replicas.
CREATE TABLE cloud_boxes (
    id              text COLLATE "C" PRIMARY KEY,
    pub             bytea NOT NULL DEFAULT '',
    rev             bigint NOT NULL DEFAULT 0 CHECK (rev >= 0),
    logstart        bigint NOT NULL DEFAULT 0 CHECK (logstart >= 0),
    highseq         bigint NOT NULL DEFAULT 0 CHECK (highseq >= 0),
    seqbase         bigint NOT NULL DEFAULT 0 CHECK (seqbase >= 0),
    seqbase_pending boolean NOT NULL DEFAULT false,
    status          json,
    registered_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cloud_keys (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    id     text COLLATE "C" NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, id)
);

-- One fob, one key.
CREATE TABLE cloud_fobs (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    fob    text COLLATE "C" NOT NULL,
    key_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (box_id, fob)
);

CREATE TABLE cloud_grants (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    id     text COLLATE "C" NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, id)
);

-- The code index: HMAC of the code, for the uniqueness check per box.
CREATE TABLE cloud_codes (
    box_id   text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    code_mac bytea NOT NULL,
    grant_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (box_id, code_mac, grant_id)
);

-- What each revision touched, for deltas.
CREATE TABLE cloud_log (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    rev    bigint NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, rev)
);

-- Events by (box, seq): a seq is stored once, whichever replica got it.
CREATE TABLE cloud_events (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, seq)
);

-- The received-day index of the retention sweep: day -> highest seq.
CREATE TABLE cloud_event_days (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    day    bigint NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (box_id, day)
);

CREATE TABLE cloud_commands (
    box_id text COLLATE "C" NOT NULL REFERENCES cloud_boxes (id) ON DELETE CASCADE,
    id     text COLLATE "C" NOT NULL,
    doc    json NOT NULL,
    PRIMARY KEY (box_id, id)
);

-- +goose Down
DROP TABLE cloud_commands;
DROP TABLE cloud_event_days;
DROP TABLE cloud_events;
DROP TABLE cloud_log;
DROP TABLE cloud_codes;
DROP TABLE cloud_grants;
DROP TABLE cloud_fobs;
DROP TABLE cloud_keys;
DROP TABLE cloud_boxes;
DROP TABLE cloud_meta;
