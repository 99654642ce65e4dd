package main

import (
	"testing"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// migrate's test needs a PostgreSQL: one throwaway cluster per test binary.
func TestMain(m *testing.M) { pgtest.Main(m) }
