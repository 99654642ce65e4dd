package broker_test

import (
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/broker"
)

// cpuTime is this process's user+system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// 100 wrong passwords for one box from one address cost the broker a few
// bcrypt checks, not 100 (the issue: 6 s of CPU). The figures are logged:
//
//	go test -count=1 -run TestWrongLoginsCPU -v ./sync/broker/ | grep cpu
func TestWrongLoginsCPU(t *testing.T) {
	hash, err := broker.HashPassword("the-right-password") // the production cost
	require.NoError(t, err)
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", CloudUser: "cloud",
		StaticUsers: []broker.User{{Name: "box-a", PasswordHash: hash}},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer b.Close()

	start := cpuTime(t)
	require.False(t, broker.CheckPassword(hash, "wrong"))
	one := cpuTime(t) - start

	const n = 100
	start = cpuTime(t)
	began := time.Now()
	for i := range n {
		o := paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("box-a").
			SetUsername("box-a").SetPassword("wrong").SetAutoReconnect(false).
			SetProtocolVersion(4).SetConnectTimeout(wait)
		tok := paho.NewClient(o).Connect()
		require.True(t, tok.WaitTimeout(wait), "login %d", i)
		require.Error(t, tok.Error(), "login %d", i)
	}
	spent := cpuTime(t) - start
	t.Logf("cpu: one bcrypt check %v; %d wrong logins from one address took %v of CPU (user+sys, whole test process) in %v",
		one, n, spent, time.Since(began).Round(time.Millisecond))
	require.Less(t, spent, 20*one, "at most a handful of the %d logins were checked", n)
}
