package bridge

import (
	"testing"

	"github.com/smartbox-oss/smartbox/sync/pgtest"
)

// The bridge's tests run on the engine pgtest.Engine() names; the
// PostgreSQL ones share one throwaway cluster per test binary.
func TestMain(m *testing.M) { pgtest.Main(m) }
