package notify_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/notify/twiliotest"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "tok-0123456789"
)

func startTwilio(t *testing.T) (*twiliotest.Server, *httptest.Server) {
	t.Helper()
	fake := twiliotest.New(testSID, testToken)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv
}

func newSMS(t *testing.T, base string, mod func(*notify.SMSConfig)) *notify.SMSClient {
	t.Helper()
	c, _ := newSMSWaits(t, base, mod)
	return c
}

// newSMSWaits is newSMS whose back-off waits are recorded, not slept
// (unless mod sets its own Sleep): the tests run without a timer.
func newSMSWaits(t *testing.T, base string, mod func(*notify.SMSConfig)) (*notify.SMSClient, *waits) {
	t.Helper()
	w := &waits{}
	cfg := notify.SMSConfig{
		BaseURL: base, AccountSID: testSID, AuthToken: testToken, From: "+15555550199",
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Sleep: w.sleep,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := notify.NewSMSClient(cfg)
	require.NoError(t, err)
	return c, w
}

// waits records the back-off waits asked for.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// The request on the wire: path, basic auth, form fields.
func TestSMSRequestShape(t *testing.T) {
	var (
		mu  sync.Mutex
		got *http.Request
		frm url.Values
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, r.ParseForm())
		mu.Lock()
		got, frm = r, r.PostForm
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SM1","status":"queued"}`))
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name     string
		mod      func(*notify.SMSConfig)
		wantFrom string
		wantMSS  string
	}{
		{name: "from number", wantFrom: "+15555550199"},
		{name: "messaging service", mod: func(c *notify.SMSConfig) { c.From = ""; c.MessagingServiceSID = "MG123" }, wantMSS: "MG123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newSMS(t, srv.URL+"/", tt.mod)
			res, err := c.Send(context.Background(), "+15555550100", "PIN 482913, Zoë")
			require.NoError(t, err)
			require.Equal(t, notify.SMSResult{SID: "SM1", Status: "queued"}, res)
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, http.MethodPost, got.Method)
			require.Equal(t, "/2010-04-01/Accounts/"+testSID+"/Messages.json", got.URL.Path)
			require.Equal(t, "application/x-www-form-urlencoded", got.Header.Get("Content-Type"))
			require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(testSID+":"+testToken)), got.Header.Get("Authorization"))
			require.Equal(t, "+15555550100", frm.Get("To"))
			require.Equal(t, "PIN 482913, Zoë", frm.Get("Body"))
			require.Equal(t, tt.wantFrom, frm.Get("From"))
			require.Equal(t, tt.wantMSS, frm.Get("MessagingServiceSid"))
		})
	}
}

func TestSMSAgainstFakeTwilio(t *testing.T) {
	t.Run("201 accepted and stored", func(t *testing.T) {
		fake, srv := startTwilio(t)
		res, err := newSMS(t, srv.URL, nil).Send(context.Background(), "+15555550100", "hello")
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(res.SID, "SM"), res.SID)
		require.Equal(t, "queued", res.Status)
		msgs := fake.Messages()
		require.Len(t, msgs, 1)
		require.Equal(t, res.SID, msgs[0].SID)
		require.Equal(t, "+15555550100", msgs[0].To)
		require.Equal(t, "+15555550199", msgs[0].From)
		require.Equal(t, "hello", msgs[0].Body)
	})
	t.Run("400 surfaced, not retried", func(t *testing.T) {
		fake, srv := startTwilio(t)
		// The client checks E.164 itself; a number that passes it but
		// that the gateway refuses is shown through a body too long.
		_, err := newSMS(t, srv.URL, nil).Send(context.Background(), "+15555550100", strings.Repeat("x", 1601))
		var se *notify.SMSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, http.StatusBadRequest, se.HTTPStatus)
		require.Equal(t, twiliotest.CodeBodyTooLong, se.Code)
		require.Contains(t, se.MoreInfo, "21617")
		require.False(t, se.Temporary())
		require.Equal(t, 1, fake.Requests())
		require.Empty(t, fake.Messages())
	})
	t.Run("wrong token is 401, not retried", func(t *testing.T) {
		fake, srv := startTwilio(t)
		_, err := newSMS(t, srv.URL, func(c *notify.SMSConfig) { c.AuthToken = "wrong" }).Send(context.Background(), "+15555550100", "x")
		var se *notify.SMSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, http.StatusUnauthorized, se.HTTPStatus)
		require.Equal(t, twiliotest.CodeAuth, se.Code)
		require.NotContains(t, err.Error(), "wrong")
		require.Equal(t, 0, fake.Requests()) // refused before the endpoint
	})
	t.Run("500 retried then sent", func(t *testing.T) {
		fake, srv := startTwilio(t)
		fake.FailNext(2, http.StatusInternalServerError, "")
		c, w := newSMSWaits(t, srv.URL, nil)
		res, err := c.Send(context.Background(), "+15555550100", "hello")
		require.NoError(t, err)
		require.NotEmpty(t, res.SID)
		require.Equal(t, 3, fake.Requests())
		require.Len(t, fake.Messages(), 1)
		// Full jitter above MinBackoff: the first wait is MinBackoff, the
		// second at most twice it.
		got := w.all()
		require.Len(t, got, 2)
		require.Equal(t, time.Millisecond, got[0])
		require.GreaterOrEqual(t, got[1], time.Millisecond)
		require.LessOrEqual(t, got[1], 2*time.Millisecond)
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		fake, srv := startTwilio(t)
		fake.FailNext(1, http.StatusTooManyRequests, "1")
		c, w := newSMSWaits(t, srv.URL, func(c *notify.SMSConfig) { c.MaxBackoff = 300 * time.Millisecond })
		_, err := c.Send(context.Background(), "+15555550100", "hello")
		require.NoError(t, err)
		// Retry-After: 1 is capped at MaxBackoff (300 ms), and waited.
		require.Equal(t, []time.Duration{300 * time.Millisecond}, w.all())
		require.Equal(t, 2, fake.Requests())
	})
	t.Run("5xx until attempts run out", func(t *testing.T) {
		fake, srv := startTwilio(t)
		fake.FailNext(10, http.StatusServiceUnavailable, "")
		c, w := newSMSWaits(t, srv.URL, func(c *notify.SMSConfig) { c.MaxAttempts = 3 })
		_, err := c.Send(context.Background(), "+15555550100", "hello")
		var se *notify.SMSError
		require.ErrorAs(t, err, &se)
		require.Equal(t, http.StatusServiceUnavailable, se.HTTPStatus)
		require.True(t, se.Temporary())
		require.Equal(t, 3, fake.Requests())
		require.Len(t, w.all(), 2, "no wait after the last attempt")
	})
	t.Run("context cancelled during back-off", func(t *testing.T) {
		fake, srv := startTwilio(t)
		fake.FailNext(10, http.StatusInternalServerError, "")
		// The deadline passes during the 5 s wait: the wait is an injected
		// one that only the context ends, and the wait itself ends the
		// context, so no timer races the request.
		ctx := &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
		waited := make(chan time.Duration, 1)
		c := newSMS(t, srv.URL, func(c *notify.SMSConfig) {
			c.MinBackoff, c.MaxBackoff = 5*time.Second, 10*time.Second
			c.Sleep = func(ctx context.Context, d time.Duration) error {
				waited <- d
				close(ctx.(*deadlineCtx).done)
				<-ctx.Done()
				return ctx.Err()
			}
		})
		start := time.Now()
		_, err := c.Send(ctx, "+15555550100", "hello")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "HTTP 500", "with what the attempt saw")
		require.Equal(t, 5*time.Second, <-waited)
		require.Less(t, time.Since(start), 3*time.Second)
	})
	t.Run("gateway down: network error retried then reported", func(t *testing.T) {
		_, srv := startTwilio(t)
		url := srv.URL
		srv.Close()
		_, err := newSMS(t, url, func(c *notify.SMSConfig) { c.MaxAttempts = 2 }).Send(context.Background(), "+15555550100", "hello")
		require.Error(t, err)
		var se *notify.SMSError
		require.False(t, errors.As(err, &se))
	})
}

// deadlineCtx is a context whose deadline the test passes by hand (closing
// done), so that a test needs no timer to see context.DeadlineExceeded.
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.done }

func (c *deadlineCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestSMSBadInput(t *testing.T) {
	cfgs := []struct {
		name string
		cfg  notify.SMSConfig
		want string
	}{
		{"no sid", notify.SMSConfig{AuthToken: "t", From: "+15555550199"}, "account sid"},
		{"no sender", notify.SMSConfig{AccountSID: "AC1", AuthToken: "t"}, "From number or a MessagingServiceSID"},
		{"bad base", notify.SMSConfig{BaseURL: "ftp://x", AccountSID: "AC1", AuthToken: "t", From: "+15555550199"}, "base url"},
		{"sid with slash", notify.SMSConfig{AccountSID: "AC1/../x", AuthToken: "t", From: "+15555550199"}, "URL characters"},
	}
	for _, tt := range cfgs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := notify.NewSMSClient(tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
	fake, srv := startTwilio(t)
	c := newSMS(t, srv.URL, nil)
	for _, to := range []string{"", "5555550100", "+1555", "+1555555010012345678", "+1555-555-0100", "+05555550100"} {
		t.Run("to "+to, func(t *testing.T) {
			_, err := c.Send(context.Background(), to, "x")
			require.ErrorContains(t, err, "E.164")
		})
	}
	require.Equal(t, 0, fake.Requests())
}

func TestParseSMSAnswer(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    notify.SMSResult
		wantErr string
	}{
		{"created", 201, `{"sid":"SM1","status":"queued","extra":1}`, notify.SMSResult{SID: "SM1", Status: "queued"}, ""},
		{"created without sid", 201, `{"status":"queued"}`, notify.SMSResult{}, "without a message sid"},
		{"created not json", 201, `<html>`, notify.SMSResult{}, "not JSON"},
		{"twilio error", 400, `{"code":21211,"message":"Invalid 'To' Phone Number","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`, notify.SMSResult{}, "HTTP 400, error 21211: Invalid 'To' Phone Number"},
		{"proxy error page", 502, `<html>bad gateway</html>`, notify.SMSResult{}, "HTTP 502: Bad Gateway"},
		{"empty error", 500, ``, notify.SMSResult{}, "HTTP 500: Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := notify.ParseSMSAnswer(tt.status, []byte(tt.body))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
