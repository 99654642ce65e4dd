# SmartBox: `make demo` runs the box on simulated hardware, `make test` runs
# every test. Needs Go 1.26; the race detector also wants a C compiler (gcc).

GO        ?= go
BIN       := bin
DEMO_DATA := demo-data
FUZZTIME  ?= 10s

# The build time is the box's floor for a trustworthy clock (see box/doc.go):
# the last commit's time, or now outside a git checkout.
BUILD_TIME ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -X main.buildTime=$(BUILD_TIME)

# go build stamps VCS info and fails when the tree is a git checkout but git
# is not installed; stamp only when git is there.
BUILDVCS := $(if $(shell command -v git 2>/dev/null),auto,false)

# -race needs cgo, and cgo a C compiler: without one, test without -race and say so.
RACE := $(if $(shell command -v gcc 2>/dev/null || command -v cc 2>/dev/null),-race,)

.PHONY: all build test bench fuzz lint demo clean

all: build

build:
	$(GO) build -buildvcs=$(BUILDVCS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

test:
	@if [ -z "$(RACE)" ]; then echo "make test: no C compiler found, running without -race (apt-get install gcc)"; fi
	$(GO) test $(RACE) -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# go test -fuzz takes one target per run: find every func FuzzXxx and fuzz
# each for FUZZTIME.
fuzz:
	@set -e; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$dir $$name"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# demo: a store in demo-data/ with the demo keys and codes, then the daemon on
# simulated hardware with a console on this terminal.
demo: build
	@mkdir -p $(DEMO_DATA)
	@if [ ! -f $(DEMO_DATA)/box.db ]; then $(BIN)/smartboxctl init --data $(DEMO_DATA) --box-id demo-box; fi
	@if [ ! -f $(DEMO_DATA)/.imported ]; then \
		$(BIN)/smartboxctl import --data $(DEMO_DATA) cmd/smartboxd/demo-records.json && touch $(DEMO_DATA)/.imported; \
	fi
	@echo
	@echo "SmartBox demo. Codes: 123456 (slot 1), 246810 (slot 2), 135790 (slots 3+4),"
	@echo "driver code 9999 (slots 3+4). Fobs: key-1 01000734E0, key-2 0100073A1B,"
	@echo "key-3 01000740C2, key-4 0100074D55. Try: press 123456#, take 1, scan 01000734E0, return 1."
	@echo "Ctrl-C or quit stops it (every slot relocks)."
	@echo
	$(BIN)/smartboxd --config cmd/smartboxd/smartboxd.sim.toml --hardware sim --data $(DEMO_DATA)

clean:
	rm -rf $(BIN) $(DEMO_DATA)
