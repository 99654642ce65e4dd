-- +goose Up
INSERT INTO demo_rows (id, note) VALUES (1, 'applied once');
