package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/sync/internal/retry"
)

// SMSConfig configures a client of an SMS gateway with Twilio's Messages API
// shape.
type SMSConfig struct {
	// BaseURL is the API root; default "https://api.twilio.com".
	BaseURL    string
	AccountSID string
	AuthToken  string
	// From is the sending number (E.164), or leave it empty and set
	// MessagingServiceSID (Twilio then picks the number).
	From                string
	MessagingServiceSID string
	// HTTPClient defaults to a client with a 15 s timeout per attempt.
	HTTPClient *http.Client
	// MaxAttempts bounds tries on 429, 5xx and network errors; default 4.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential back-off (with full
	// jitter, sync/internal/retry) between attempts; defaults 500 ms and
	// 10 s. A 429's Retry-After is honoured up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d or until ctx is done; nil: a timer. A hook for tests.
	Sleep func(ctx context.Context, d time.Duration) error
}

// SMSClient sends text messages. Safe for concurrent use.
type SMSClient struct {
	cfg      SMSConfig
	endpoint string
	retry    retry.Loop
}

// SMSError is an error answer from the gateway: Twilio's JSON
// {code, message, more_info, status}.
type SMSError struct {
	HTTPStatus int
	Code       int    `json:"code"`
	Message    string `json:"message"`
	MoreInfo   string `json:"more_info"`
}

func (e *SMSError) Error() string {
	s := fmt.Sprintf("sms gateway: HTTP %d", e.HTTPStatus)
	if e.Code != 0 {
		s += fmt.Sprintf(", error %d", e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.MoreInfo != "" {
		s += " (" + e.MoreInfo + ")"
	}
	return s
}

// Temporary reports whether trying again later may succeed.
func (e *SMSError) Temporary() bool { return e.HTTPStatus == 429 || e.HTTPStatus >= 500 }

// SMSResult is the gateway's answer to an accepted message.
type SMSResult struct {
	SID    string `json:"sid"`
	Status string `json:"status"` // "queued", "accepted", ...
}

// NewSMSClient checks cfg and returns a client.
func NewSMSClient(cfg SMSConfig) (*SMSClient, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.twilio.com"
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: sms base url %q: want http(s)://host", cfg.BaseURL)
	}
	if cfg.AccountSID == "" || cfg.AuthToken == "" {
		return nil, errors.New("notify: sms account sid and auth token are required")
	}
	if strings.ContainsAny(cfg.AccountSID, "/?#%") {
		return nil, fmt.Errorf("notify: sms account sid %q has URL characters", cfg.AccountSID)
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		return nil, errors.New("notify: sms needs a From number or a MessagingServiceSID")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(10*time.Second, cfg.MinBackoff)
	}
	return &SMSClient{
		cfg:      cfg,
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json",
		// A Retry-After is honoured up to MaxBackoff: a wild value must
		// not stall a worker.
		retry: retry.Loop{
			Policy:   retry.Policy{Base: cfg.MinBackoff, Cap: cfg.MaxBackoff},
			Attempts: cfg.MaxAttempts,
			Sleep:    cfg.Sleep,
		},
	}, nil
}

// maxAnswer bounds what is read of a gateway answer.
const maxAnswer = 64 << 10

// Send posts one message. 429 and 5xx answers and network errors are tried
// again with back-off: a gateway that failed mid-request may have queued the
// text, and a driver getting a PIN twice beats not getting it. Other 4xx
// answers are final and returned as *SMSError.
func (c *SMSClient) Send(ctx context.Context, to, body string) (SMSResult, error) {
	if !validE164(to) {
		return SMSResult{}, fmt.Errorf("notify: sms to %s: not an E.164 number (+ and 8 to 15 digits)", maskPhone(to))
	}
	form := url.Values{"To": {to}, "Body": {body}}
	if c.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", c.cfg.MessagingServiceSID)
	} else {
		form.Set("From", c.cfg.From)
	}
	encoded := form.Encode()
	res, err := retry.Do(ctx, c.retry, func(ctx context.Context) (SMSResult, retry.Outcome, error) {
		res, retryAfter, err := c.post(ctx, encoded)
		var se *SMSError
		return res, retry.Outcome{Retry: !errors.As(err, &se) || se.Temporary(), RetryAfter: retryAfter}, err
	})
	if err != nil {
		return SMSResult{}, fmt.Errorf("notify: sms to %s: %w", maskPhone(to), err)
	}
	return res, nil
}

func (c *SMSClient) post(ctx context.Context, form string) (SMSResult, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form))
	if err != nil {
		return SMSResult{}, 0, fmt.Errorf("build request: %w", err)
	}
	req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds the account SID but not
		// the token: fine to return.
		return SMSResult{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return SMSResult{}, 0, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err)
	}
	res, err := ParseSMSAnswer(resp.StatusCode, raw)
	return res, retry.RetryAfter(resp.Header.Get("Retry-After"), time.Now()), err
}

// ParseSMSAnswer reads a gateway answer: a 2xx with {sid, status}, or an
// *SMSError for anything else (with Twilio's error fields when the body is
// its JSON, the status text otherwise).
func ParseSMSAnswer(status int, body []byte) (SMSResult, error) {
	if status >= 200 && status < 300 {
		var r SMSResult
		if err := json.Unmarshal(body, &r); err != nil {
			return SMSResult{}, fmt.Errorf("sms gateway: HTTP %d with a body that is not JSON: %w", status, err)
		}
		if r.SID == "" {
			return SMSResult{}, fmt.Errorf("sms gateway: HTTP %d without a message sid", status)
		}
		return r, nil
	}
	e := &SMSError{}
	if json.Unmarshal(body, e) != nil || (e.Code == 0 && e.Message == "") {
		e = &SMSError{Message: http.StatusText(status)}
	}
	e.HTTPStatus = status
	return SMSResult{}, e
}

func validE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
