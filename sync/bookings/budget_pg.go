package bookings

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// PostgresBudget is a fleetio.Budget that the replicas on one database
// share: one row of bookings_budgets (migration 00002) holds the tokens
// left and when, and each take is one UPDATE that refills the bucket from
// the database's clock (one clock for every replica, whatever theirs say),
// takes a token if there is one, and says when the next one comes. N
// replicas together send at most perMinute requests a minute, bursts of
// burst; a 429's Retry-After (Pause) empties the row and holds every
// replica's takes until it is over.
type PostgresBudget struct {
	pool      *pgxpool.Pool
	name      string
	perSecond float64
	burst     float64
	sleep     func(ctx context.Context, d time.Duration) error
}

var _ fleetio.Budget = (*PostgresBudget)(nil)

// budgetOpTimeout bounds one statement of the budget: TryTake has no
// context, and a database that stopped answering must refuse the token
// (no request goes out) rather than hold the caller.
const budgetOpTimeout = 5 * time.Second

// NewPostgresBudget makes (if there is none) the budget called name in the
// database of pool, full, and returns it; the store must have been opened
// on that database (OpenPostgresStore applies the migration). Every
// replica must give the same perMinute and burst (the rate is each take's,
// the row only keeps the tokens).
func NewPostgresBudget(ctx context.Context, pool *pgxpool.Pool, name string, perMinute, burst int) (*PostgresBudget, error) {
	if pool == nil || name == "" {
		return nil, fmt.Errorf("%w budget: pool and name are required", ErrInvalid)
	}
	perMinute, burst = max(perMinute, 1), max(burst, 1)
	if _, err := pool.Exec(ctx, `INSERT INTO bookings_budgets (name, tokens, updated_at) VALUES ($1, $2, clock_timestamp())
		ON CONFLICT (name) DO NOTHING`, name, float64(burst)); err != nil {
		return nil, fmt.Errorf("fleetio budget %s: %w", name, err)
	}
	return &PostgresBudget{pool: pool, name: name, perSecond: float64(perMinute) / 60, burst: float64(burst), sleep: retry.Sleep}, nil
}

// pgBudgetTake is the take: cur locks the row and computes what it holds
// now (refilled, capped at the burst); the update keeps the refill and
// takes a token when one is whole; the answer is whether it did and how
// long until the next (the pause's end while paused).
const pgBudgetTake = `WITH cur AS (
	SELECT name, paused_until, clock_timestamp() AS at,
		least($3::float8, tokens + greatest(extract(epoch FROM clock_timestamp() - updated_at)::float8, 0) * $2::float8) AS t
	FROM bookings_budgets WHERE name = $1 FOR UPDATE)
UPDATE bookings_budgets b SET
	tokens = CASE WHEN cur.paused_until > cur.at THEN b.tokens WHEN cur.t >= 1 THEN cur.t - 1 ELSE cur.t END,
	updated_at = CASE WHEN cur.paused_until > cur.at THEN b.updated_at ELSE cur.at END
FROM cur WHERE b.name = cur.name
RETURNING NOT coalesce(cur.paused_until > cur.at, false) AND cur.t >= 1,
	CASE WHEN cur.paused_until > cur.at THEN extract(epoch FROM cur.paused_until - cur.at)::float8
		ELSE greatest((1 - cur.t) / $2::float8, 0.001) END`

// take takes a token if one is free; otherwise it says how long until one
// may be.
func (b *PostgresBudget) take(ctx context.Context) (time.Duration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, budgetOpTimeout)
	defer cancel()
	var took bool
	var wait float64
	if err := b.pool.QueryRow(ctx, pgBudgetTake, b.name, b.perSecond, b.burst).Scan(&took, &wait); err != nil {
		return 0, false, fmt.Errorf("fleetio budget %s: take: %w", b.name, err)
	}
	return time.Duration(wait * float64(time.Second)), took, nil
}

// Take waits for a token. A database error is the request's error (it is
// not sent; the queue retries it).
func (b *PostgresBudget) Take(ctx context.Context) error {
	for {
		wait, ok, err := b.take(ctx)
		if err != nil || ok {
			return err
		}
		if err := b.sleep(ctx, max(wait, time.Millisecond)); err != nil {
			return err
		}
	}
}

// TryTake takes a token if one is free now; false when the database does
// not answer (no request goes out unpaid).
func (b *PostgresBudget) TryTake() bool {
	_, ok, err := b.take(context.Background())
	return err == nil && ok
}

// Pause empties the budget and holds every replica's takes until until
// (the caller's clock: a Retry-After is seconds from the answer; replicas'
// clocks a second apart move the end of the pause by that much).
func (b *PostgresBudget) Pause(until time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), budgetOpTimeout)
	defer cancel()
	// Errors are dropped: the 429 itself is retried with its Retry-After
	// by the queue's back-off, whatever the shared pause.
	_, _ = b.pool.Exec(ctx, `UPDATE bookings_budgets SET tokens = 0, updated_at = greatest(updated_at, $2),
		paused_until = greatest(coalesce(paused_until, $2), $2) WHERE name = $1`, b.name, until)
}

// Available is how many whole tokens the budget holds now (0 while
// paused): for stats and tests.
func (b *PostgresBudget) Available(ctx context.Context) (int, error) {
	var n float64
	err := b.pool.QueryRow(ctx, `SELECT CASE WHEN coalesce(paused_until > clock_timestamp(), false) THEN 0
		ELSE least($2::float8, tokens + greatest(extract(epoch FROM clock_timestamp() - updated_at)::float8, 0) * $3::float8) END
		FROM bookings_budgets WHERE name = $1`, b.name, b.burst, b.perSecond).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("fleetio budget %s: %w", b.name, errors.Join(err))
	}
	return int(n), nil
}
