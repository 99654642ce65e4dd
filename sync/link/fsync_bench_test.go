package link_test

import (
	"os"
	"path/filepath"
	"testing"
)

// fsyncRecord is the size of what BenchmarkFsync writes before each fsync:
// about one event record, so that the figure is the disk's sync cost and
// not its bandwidth.
const fsyncRecord = 256

// BenchmarkFsync is the reference for BenchmarkDrain10k's events/s: write a
// small record to a file in the benchmark's temp dir (the file system the
// drain's bbolt files live on) and fsync it, once per op. A drain that acks
// each event with its own commit cannot beat this rate; one that batches can.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync.dat"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, fsyncRecord)
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.WriteAt(rec, 0); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}
