package smtptest_test

import (
	"net"
	"net/smtp"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify/smtptest"
)

func TestKeepsMessages(t *testing.T) {
	s := smtptest.Start(t)
	msg := "Subject: Your key\r\nTo: ada@example.com\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"PIN: 4829=\r\n13, long line=3D joined\r\n"
	require.NoError(t, smtp.SendMail(s.Addr, nil, "bridge@example.com", []string{"ada@example.com", "desk@example.com"}, []byte(msg)))

	got := s.To("ada@example.com")
	require.Len(t, got, 1)
	require.Equal(t, "Your key", got[0].Subject)
	require.Equal(t, "PIN: 482913, long line= joined\n", got[0].Body)
	require.Contains(t, got[0].Text(), "quoted-printable\n\nPIN: 482913")
	require.Len(t, s.To("desk@example.com"), 1)
	require.Empty(t, s.To("bob@example.com"))
	require.Len(t, s.Mails(), 1)
}

// changeWait bounds the wait for a Changed channel: a message on loopback
// arrives in milliseconds, so this is generous.
const changeWait = 10 * time.Second

func TestListenChangedClose(t *testing.T) {
	s, err := smtptest.Listen("")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"), s.Addr)

	ch := s.Changed()
	require.True(t, ch == s.Changed(), "callers waiting for the same message share a channel")
	select {
	case <-ch:
		t.Fatal("closed before any message")
	default:
	}
	send := func(to string) {
		t.Helper()
		require.NoError(t, smtp.SendMail(s.Addr, nil, "bridge@example.com", []string{to}, []byte("Subject: PIN\r\n\r\n482913\r\n")))
	}
	send("ada@example.com")
	select {
	case <-ch:
	case <-time.After(changeWait):
		t.Fatal("Changed not closed by an accepted message")
	}
	require.Len(t, s.Mails(), 1, "the message is kept by the time Changed closes")

	next := s.Changed()
	require.False(t, next == ch, "a fresh call waits for the next message")
	send("bob@example.com")
	select {
	case <-next:
	case <-time.After(changeWait):
		t.Fatal("Changed not closed by the second message")
	}
	require.Len(t, s.To("bob@example.com"), 1)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close does nothing")
	_, err = net.Dial("tcp", s.Addr)
	require.Error(t, err, "nothing listens after Close")
	require.Len(t, s.Mails(), 2, "the messages are still readable after Close")
}

func TestListenErrors(t *testing.T) {
	s, err := smtptest.Listen("")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	_, err = smtptest.Listen(s.Addr)
	require.ErrorContains(t, err, "smtptest: listen on "+s.Addr)
	_, err = smtptest.Listen("not an address")
	require.Error(t, err)
}

// TestCloseAtOnce: a Close straight after Listen (before the accept loop has
// started) still stops it, and leaves no goroutine behind.
func TestCloseAtOnce(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 50 {
		s, err := smtptest.Listen("")
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits until at most n goroutines run. Close has waited for
// the accept loop, which may still be on its way out. require.Eventually
// would count its own condition goroutine, hence a loop.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(changeWait)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			var dump strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, dump.String())
		}
		time.Sleep(time.Millisecond)
	}
}
