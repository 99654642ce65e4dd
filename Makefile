# SmartBox: `make demo` runs the box on simulated hardware, `make test` runs
# every test. Needs Go 1.26; the race detector also wants a C compiler (gcc).

GO        ?= go
BIN       := bin
DEMO_DATA := demo-data
FUZZTIME  ?= 10s
# BENCHTIME: go test -benchtime of make bench's short benchmarks (the
# scenario ones have fixed counts, cmd/internal/benchtable/table/rows.go).
BENCHTIME ?= 1s

# What every binary's --version says (cmd/internal/buildinfo). The build time
# is also the box's floor for a trustworthy clock (see box/doc.go): the last
# commit's time, or now outside a git checkout. The version is the nearest
# tag (v1.2.3, or v1.2.3-4-gabcdef1-dirty past it), the bare commit without
# tags, "dev" outside a checkout.
BUILD_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDINFO  := github.com/smartbox-oss/smartbox/cmd/internal/buildinfo
LDFLAGS    := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).buildTime=$(BUILD_TIME)

# go build stamps VCS info and fails when the tree is a git checkout but git
# is not installed; stamp only when git is there.
BUILDVCS := $(if $(shell command -v git 2>/dev/null),auto,false)

# -race needs cgo, and cgo a C compiler: without one, test without -race and say so.
RACE := $(if $(shell command -v gcc 2>/dev/null || command -v cc 2>/dev/null),-race,)

.PHONY: all build firmware test bench fuzz lint demo demo-offline clean chaos

all: build

# The commands, not the tools under cmd/internal (mkfirmware is `make
# firmware`'s, and pulls in the packaging library).
build:
	$(GO) build -buildvcs=$(BUILDVCS) -ldflags '$(LDFLAGS)' -o $(BIN)/ $$($(GO) list ./cmd/... | grep -v /internal/)

# firmware: smartboxd and smartboxctl for every board (linux/arm GOARM 6
# and 7, linux/arm64, linux/amd64; static, -trimpath, stamped like build),
# per target a .deb (built in Go with nfpm) and a .tar.gz of the same files,
# and SHA256SUMS over them all, into DIST. FIRMWARE_TARGETS narrows it:
# `make firmware FIRMWARE_TARGETS=arm64`. See cmd/internal/firmware.
DIST             ?= dist
FIRMWARE_TARGETS ?= all
firmware:
	$(GO) run ./cmd/internal/firmware/mkfirmware --out $(DIST) --targets $(FIRMWARE_TARGETS) \
		--version '$(VERSION)' --commit '$(COMMIT)' --build-time '$(BUILD_TIME)'

# The packages whose tests run on either store engine (pgtest.Engine).
PG_PACKAGES := ./sync/cloud ./sync/bookings ./sync/bridge

test:
	@if [ -z "$(RACE)" ]; then echo "make test: no C compiler found, running without -race (apt-get install gcc)"; fi
	# Packages run in parallel: no test's outcome depends on how fast the
	# machine is. The keypad, slot and keypad-sim tests run on testing/synctest's
	# fake clock, the fob reader's on an injected one, and the rest wait for
	# conditions, with bounds that only a real hang reaches.
	$(GO) test $(RACE) -count=1 -timeout 30m ./...
	# The bridge's stores once more on PostgreSQL: the same suites, each
	# test on a database of a throwaway cluster (sync/pgtest).
	SMARTBOX_TEST_STORE=postgres $(GO) test $(RACE) -count=1 -timeout 30m $(PG_PACKAGES)

# BENCH_FLAGS adds flags: `make bench BENCH_FLAGS="--skip ./sync/loadbox"`
# leaves the 1,000-box rows out (and says the table is partial).
BENCH_FLAGS ?=
bench:
	$(GO) run ./cmd/internal/benchtable --benchtime $(BENCHTIME) --go $(GO) $(BENCH_FLAGS)

# fuzz: every fuzz target in the tree (cmd/internal/fuzzall finds each func
# FuzzXxx), one at a time for FUZZTIME each (`make fuzz FUZZTIME=1m`), then a
# table of executions and new corpus entries per target. Fails if a target
# fails; go keeps the failing input under the package's testdata/fuzz/.
fuzz:
	$(GO) run ./cmd/internal/fuzzall --go $(GO) --fuzztime $(FUZZTIME)

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# chaos: the whole installation (the bridge as its own process, N real
# smartboxd processes) under load and random faults for CHAOS_DURATION, then
# the checks; the summary ends in "breaches: N", exit 1 on any. CHAOS_FLAGS
# adds flags: `make chaos CHAOS_FLAGS="--boxes 6 --seed 42"`.
CHAOS_DURATION ?= 60s
CHAOS_FLAGS    ?=
chaos: build
	$(BIN)/smartbox-chaos --duration $(CHAOS_DURATION) $(CHAOS_FLAGS)

# demo: the simulator (cmd/smartbox-sim): the bridge with its embedded
# broker, a fake Fleetio account, mail and SMS catchers and a box (a real
# smartboxd process on simulated pins) in one command; it prints the page's
# URL. SIM_FLAGS adds flags: `make demo SIM_FLAGS="--boxes 5"`, or
# SIM_FLAGS=--console for box 1's line console on this terminal.
SIM_FLAGS ?=
demo: build
	$(BIN)/smartbox-sim --data $(DEMO_DATA)/sim $(SIM_FLAGS)

# demo-offline: the box alone, its records imported from a file.
demo-offline: build
	@mkdir -p $(DEMO_DATA)/offline
	@if [ ! -f $(DEMO_DATA)/offline/box.db ]; then \
		$(BIN)/smartboxctl init --data $(DEMO_DATA)/offline --box-id demo-box && \
		$(BIN)/smartboxctl import --data $(DEMO_DATA)/offline cmd/smartboxd/demo-records.json; \
	fi
	$(BIN)/smartboxd --config cmd/smartboxd/smartboxd.sim.toml --hardware sim --data $(DEMO_DATA)/offline

clean:
	rm -rf $(BIN) $(DEMO_DATA) $(DIST)
