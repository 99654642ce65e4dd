package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// benchGrants is the size of the benchmark store: far more grants than a
// box will hold, so that the lookup figure is an upper bound.
const benchGrants = 100_000

// The benchmark file is built once per test binary run and shared by
// BenchmarkGrantsByCode and BenchmarkRawBoltGet, so both read the same tree.
var bench struct {
	once  sync.Once
	dir   string
	store *Store
	err   error
}

func benchCode(i int) string {
	// i*7919 mod 10^8 is a permutation of 0..10^8-1 (7919 is prime and does
	// not divide 10^8): unique 8-digit codes that are not in index order.
	return fmt.Sprintf("%08d", (i*7919)%100_000_000)
}

func benchID(i int) string { return fmt.Sprintf("g-%06d", i) }

func benchStore(b *testing.B) *Store {
	b.Helper()
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "store-bench-")
		if bench.err != nil {
			return
		}
		var s *Store
		s, bench.err = Open(filepath.Join(bench.dir, "box.db"), Options{BoxID: "bench"})
		if bench.err != nil {
			return
		}
		const batch = 10_000
		for start := 0; start < benchGrants; start += batch {
			gs := make([]box.GrantPut, 0, batch)
			for i := start; i < start+batch; i++ {
				gs = append(gs, box.GrantPut{Grant: box.Grant{
					ID: benchID(i), Kind: box.KindBooking, KeyIDs: []string{fmt.Sprintf("k%d", i%12+1)},
					DriverRef: fmt.Sprintf("driver-%d", i%500), Source: "bench",
				}, Code: benchCode(i)})
			}
			if _, bench.err = s.Apply(Batch{Grants: gs}); bench.err != nil {
				return
			}
		}
		bench.store = s
	})
	if bench.err != nil {
		b.Fatalf("building the benchmark store: %v", bench.err)
	}
	return bench.store
}

func cleanupBenchFixture() {
	if bench.store != nil {
		_ = bench.store.Close()
	}
	if bench.dir != "" {
		_ = os.RemoveAll(bench.dir)
	}
}

// BenchmarkGrantsByCode looks up random existing codes among 100,000 grants:
// HMAC, index seek, grant decode.
func BenchmarkGrantsByCode(b *testing.B) {
	s := benchStore(b)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i := r.IntN(benchGrants)
		gs, err := s.GrantsByCode(benchCode(i))
		if err != nil || len(gs) != 1 || gs[0].ID != benchID(i) {
			b.Fatalf("code %d: %v %v", i, gs, err)
		}
	}
}

// BenchmarkRawBoltGet is the floor: a bbolt View and one Get of a random
// grant record on the same file, without decoding.
func BenchmarkRawBoltGet(b *testing.B) {
	s := benchStore(b)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		id := []byte(benchID(r.IntN(benchGrants)))
		err := s.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketGrants).Get(id) == nil {
				return fmt.Errorf("grant %s missing", id)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitEvent commits one event per Commit, fsync included: the
// cost of every key taken or code refused.
func BenchmarkCommitEvent(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "box.db"), Options{BoxID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev := []box.Event{{Type: box.EventCodeRefused, Reason: box.ReasonUnknownCode, Failures: 1}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Commit(box.Change{Events: ev}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}
