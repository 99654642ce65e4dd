package notify_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify"
)

// syncBuffer is a log sink safe for the race detector.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDispatcher(t *testing.T) {
	mailSrv := startMailServer(t, serverOpts{})
	fake, smsSrv := startTwilio(t)
	tm, err := notify.LoadTemplates("")
	require.NoError(t, err)
	mailer, err := notify.NewMailer(notify.EmailConfig{Addr: mailSrv.Addr, From: "SmartBox <box@depot.example>", TLS: notify.TLSNone})
	require.NoError(t, err)
	var logs syncBuffer
	d := &notify.Dispatcher{
		Templates: tm,
		Mail:      mailer,
		SMS:       newSMS(t, smsSrv.URL, nil),
		Log:       slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx := context.Background()
	both := notify.Recipient{Name: "Alex Driver", Email: "alex@example.com", Phone: "+15555550100"}
	data := notify.SampleData()

	t.Run("email by default when there is an address", func(t *testing.T) {
		require.NoError(t, d.Notify(ctx, notify.Message{To: both, Kind: notify.KindBookingCreated, Data: data}))
		got := mailSrv.messages()
		require.Len(t, got, 1)
		msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
		require.NoError(t, err)
		require.Equal(t, "Your key for Van 12 (Ford Transit) is ready", msg.Header.Get("Subject"))
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		require.NoError(t, err)
		require.Contains(t, string(body), "Your booking PIN: 482913")
		require.Contains(t, string(body), "Valid from Mon 2 Mar 2026 09:00 CST until Mon 2 Mar 2026 17:00 CST")
		require.Empty(t, fake.Messages())
	})
	t.Run("sms when chosen", func(t *testing.T) {
		require.NoError(t, d.Notify(ctx, notify.Message{To: both, Kind: notify.KindBookingUpdated, Method: notify.MethodSMS, Data: data}))
		msgs := fake.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, "+15555550100", msgs[0].To)
		require.True(t, strings.HasPrefix(msgs[0].Body, "Booking changed: Van 12"), msgs[0].Body)
		require.Contains(t, msgs[0].Body, "PIN 482913")
	})
	t.Run("sms by default when there is only a phone", func(t *testing.T) {
		require.NoError(t, d.Notify(ctx, notify.Message{To: notify.Recipient{Name: "P", Phone: "+15555550101"}, Kind: notify.KindKeyOverdue, Data: data}))
		require.Len(t, fake.Messages(), 2)
	})
	t.Run("prompt to the admin", func(t *testing.T) {
		admin := notify.Recipient{Name: "Fleet Admin", Email: "admin@depot.example"}
		require.NoError(t, d.Notify(ctx, notify.Message{To: admin, Kind: notify.KindPromptReservation, Data: data}))
		got := mailSrv.messages()
		require.Len(t, got, 2)
		require.Equal(t, []string{"admin@depot.example"}, got[1].To)
		require.NotContains(t, string(got[1].Data), "482913")
	})

	errs := []struct {
		name string
		m    notify.Message
		want string
	}{
		{"unknown kind", notify.Message{To: both, Kind: "booking_exploded", Data: data}, "unknown message kind"},
		{"no contact", notify.Message{To: notify.Recipient{Name: "Nobody"}, Kind: notify.KindBookingCreated, Data: data}, "neither email nor phone"},
		{"sms without phone", notify.Message{To: notify.Recipient{Email: "a@example.com"}, Method: notify.MethodSMS, Kind: notify.KindBookingCreated, Data: data}, "no phone number"},
		{"email without address", notify.Message{To: notify.Recipient{Phone: "+15555550100"}, Method: notify.MethodEmail, Kind: notify.KindBookingCreated, Data: data}, "no email address"},
		{"unknown method", notify.Message{To: both, Method: "pigeon", Kind: notify.KindBookingCreated, Data: data}, `unknown method "pigeon"`},
		{"missing pin", notify.Message{To: both, Kind: notify.KindBookingCreated, Data: map[string]any{}}, "map has no entry"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, d.Notify(ctx, tt.m), tt.want)
		})
	}

	t.Run("no channel configured", func(t *testing.T) {
		d := &notify.Dispatcher{Templates: tm}
		require.ErrorIs(t, d.Notify(ctx, notify.Message{To: both, Kind: notify.KindBookingCreated, Data: data}), notify.ErrNoChannel)
	})
	t.Run("gateway error surfaced, PIN not in it", func(t *testing.T) {
		fake.FailNext(10, 500, "")
		d := *d
		d.SMS = newSMS(t, smsSrv.URL, func(c *notify.SMSConfig) { c.MaxAttempts = 2 })
		err := d.Notify(ctx, notify.Message{To: both, Method: notify.MethodSMS, Kind: notify.KindBookingCreated, Data: data})
		require.ErrorContains(t, err, "HTTP 500")
		require.NotContains(t, err.Error(), "482913")
	})

	out := logs.String()
	require.Contains(t, out, `"kind":"booking_created"`)
	require.Contains(t, out, `"email":"a***@example.com"`)
	require.Contains(t, out, `"phone":"***00"`)
	require.NotContains(t, out, "482913", "a PIN in a log")
	require.NotContains(t, out, "sample-token", "an access link in a log")
	require.NotContains(t, out, "alex@example.com")
}

func TestDispatcherContext(t *testing.T) {
	fake, smsSrv := startTwilio(t)
	fake.FailNext(100, 503, "")
	tm, err := notify.LoadTemplates("")
	require.NoError(t, err)
	// The caller gives up during the first back-off wait: an injected wait
	// that cancels, then waits for the context, so no timer races the
	// request.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &notify.Dispatcher{Templates: tm, SMS: newSMS(t, smsSrv.URL, func(c *notify.SMSConfig) {
		c.MinBackoff, c.MaxBackoff, c.MaxAttempts = time.Second, 2*time.Second, 100
		c.Sleep = func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
	})}
	err = d.Notify(ctx, notify.Message{To: notify.Recipient{Phone: "+15555550100"}, Kind: notify.KindBookingCancelled, Data: notify.SampleData()})
	require.ErrorIs(t, err, context.Canceled)
}
