// Command smartbox-chaos is `make chaos`: a whole installation on loopback
// (the bridge as its own process, its broker, a fake Fleetio, N real
// smartboxd processes) under a seeded workload and random faults, healed,
// then checked (cmd/internal/chaos). Exit 1 on any breach, 2 when the run
// could not be done.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/chaos"
	"github.com/smartbox-oss/smartbox/cmd/internal/depot"
)

// defaultBoxes is the issue's: fifty real daemons.
const defaultBoxes = 50

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx))
}

func run(ctx context.Context) int {
	fs := flag.NewFlagSet("smartbox-chaos", flag.ContinueOnError)
	boxes := fs.Int("boxes", defaultBoxes, fmt.Sprintf("real smartboxd processes, 1..%d", depot.MaxBoxes))
	dur := fs.Duration("duration", 60*time.Second, "how long the workload and faults run (the heal and checks come after)")
	seed := fs.Uint64("seed", 0, "the seed of the schedule and workload (0: drawn, and printed to replay the run)")
	dir := fs.String("dir", "", "the installation's directory (default a temporary one, removed unless --keep)")
	keep := fs.Bool("keep", false, "keep the directory (logs, stores) after the run")
	verbose := fs.Bool("v", false, "log the run to stderr")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *boxes < 1 || *boxes > depot.MaxBoxes || *dur <= 0 {
		fmt.Fprintf(os.Stderr, "smartbox-chaos: --boxes 1..%d and a positive --duration\n", depot.MaxBoxes)
		return 2
	}
	if *seed == 0 {
		*seed = rand.Uint64()
	}
	fmt.Printf("smartbox-chaos: seed %d\n", *seed)
	// Errors only unless -v: the faults make the parts warn by design (a
	// cut network's proxy refusing, a broker gone), and the summary says
	// what matters.
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *dir == "" {
		d, err := os.MkdirTemp("", "smartbox-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "smartbox-chaos:", err)
			return 2
		}
		*dir = d
		if !*keep {
			defer os.RemoveAll(d)
		}
	}
	s, err := chaos.Run(ctx, chaos.Options{Boxes: *boxes, Duration: *dur, Seed: *seed, Dir: *dir, Logger: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "smartbox-chaos: the run could not be done (data in %s with --keep): %v\n", *dir, err)
		return 2
	}
	s.Print(os.Stdout)
	if len(s.Breaches) > 0 {
		return 1
	}
	return 0
}
