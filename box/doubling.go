package box

import "time"

// Doubling is base doubled n times, at most limit: the one capped
// exponential back-off rule of the tree. The box uses it for a slot's
// cool-down and the keypad's lockout, hal/rfid for reopening the fob
// reader, and the cloud side's retry policies (sync/internal/retry) for
// their ceilings.
//
// It never overflows: doubling stops at limit, whatever n is. n <= 0 is
// base itself (at most limit), and a base of zero or less is not doubled
// (there is nothing to grow).
func Doubling(base, limit time.Duration, n int) time.Duration {
	d := base
	for ; n > 0 && d > 0 && d < limit; n-- {
		if d > limit/2 {
			return limit // doubling would pass the cap (or overflow)
		}
		d *= 2
	}
	return min(d, limit)
}
