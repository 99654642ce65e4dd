package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// takeRound claims this round of the periodic job for holder: true for the
// first replica to ask in the round, false for every other one. A round is
// the window of length every (at least a second) that the database's
// clock is in, so each round's work runs once across replicas whatever
// their clocks say and whenever their tickers fire; a replica that took a
// round and died before finishing it leaves the work to the next round
// (the periodic checks repair what the last one missed).
func takeRound(ctx context.Context, pool *pgxpool.Pool, job, holder string, every time.Duration) (bool, error) {
	secs := max(int64(every/time.Second), 1)
	var got string
	err := pool.QueryRow(ctx, `
		INSERT INTO bridge_rounds AS r (job, round, holder, taken_at)
		VALUES ($1, floor(extract(epoch FROM now()) / $2)::bigint, $3, now())
		ON CONFLICT (job) DO UPDATE SET round = EXCLUDED.round, holder = EXCLUDED.holder, taken_at = EXCLUDED.taken_at
		WHERE r.round < EXCLUDED.round
		RETURNING holder`, job, secs, holder).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // another replica has this round
	}
	if err != nil {
		return false, fmt.Errorf("take the %s round: %w", job, err)
	}
	return true, nil
}
