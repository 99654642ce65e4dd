-- +goose Up
CREATE TABLE demo_rows (id bigint PRIMARY KEY, note text NOT NULL);
