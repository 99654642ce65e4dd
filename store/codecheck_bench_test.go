package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkRawBoltGetHMAC is the floor of a code check that any design must
// pay, on the same 100,000-grant file as BenchmarkGrantsByCode: one
// HMAC-SHA256 of the typed code under the box secret (one MAC reused, as
// codeHash does) and one bbolt View with one Get of the code-index entry that
// hash names. No cursor, no grant decode: what GrantsByCode adds on top is
// what `make bench` puts beside this.
func BenchmarkRawBoltGetHMAC(b *testing.B) {
	s := benchStore(b)
	r := rand.New(rand.NewPCG(1, 2))
	mac := hmac.New(sha256.New, s.secret)
	key := make([]byte, 0, sha256.Size+16)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i := r.IntN(benchGrants)
		mac.Reset()
		mac.Write([]byte(benchCode(i)))
		key = append(mac.Sum(key[:0]), benchID(i)...)
		err := s.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketCodes).Get(key) == nil {
				return fmt.Errorf("code index entry of grant %s missing", benchID(i))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
