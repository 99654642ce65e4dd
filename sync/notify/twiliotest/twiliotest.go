// Package twiliotest is a local fake of Twilio's Messages API for tests and
// the demo: POST /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP
// basic auth, form fields To, From or MessagingServiceSid, Body; 201 with
// the message JSON, or Twilio's error JSON {code, message, more_info,
// status}. Failures can be queued to exercise a client's retries. It keeps
// every accepted message in memory.
package twiliotest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Message is one accepted message.
type Message struct {
	SID                 string    `json:"sid"`
	AccountSID          string    `json:"account_sid"`
	To                  string    `json:"to"`
	From                string    `json:"from"`
	MessagingServiceSID string    `json:"messaging_service_sid,omitempty"`
	Body                string    `json:"body"`
	Status              string    `json:"status"`
	DateCreated         time.Time `json:"-"`
}

// Server is the fake API, an http.Handler: serve it with httptest.NewServer
// or any listener.
type Server struct {
	accountSID, authToken string

	mu       sync.Mutex
	messages []Message
	failures []failure
	requests int
	notify   chan struct{}
}

type failure struct {
	status     int
	retryAfter string
}

// New returns a fake for one account.
func New(accountSID, authToken string) *Server {
	return &Server{accountSID: accountSID, authToken: authToken, notify: make(chan struct{})}
}

// FailNext makes the next n valid, authenticated requests fail with status
// (500, 503, 429, ...), with Retry-After set when retryAfter is not empty.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status, retryAfter})
	}
}

// Messages returns a copy of the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Requests counts the requests that reached the Messages endpoint.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Changed returns a channel closed at the next accepted message.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify
}

// Twilio's error codes for what the fake checks.
const (
	CodeAuth          = 20003 // authentication failed
	CodeNotFound      = 20404 // resource not found
	CodeInvalidTo     = 21211 // invalid 'To' phone number
	CodeFromRequired  = 21603 // 'From' phone number is required (or MessagingServiceSid)
	CodeToRequired    = 21604 // 'To' phone number is required
	CodeBodyRequired  = 21602 // message body is required
	CodeBodyTooLong   = 21617 // body exceeds the 1600 character limit
	CodeTooMany       = 20429 // too many requests
	CodeInternalError = 20500 // internal server error
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := "/2010-04-01/Accounts/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	sid, tail, _ := strings.Cut(rest, "/")
	if !ok || tail != "Messages.json" {
		writeError(w, http.StatusNotFound, CodeNotFound, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, CodeNotFound, "Method not allowed")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.accountSID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.authToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, CodeAuth, "Authenticate")
		return
	}
	if sid != s.accountSID {
		writeError(w, http.StatusNotFound, CodeNotFound, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, 0, "Bad form: "+err.Error())
		return
	}
	s.mu.Lock()
	s.requests++
	var f *failure
	if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	s.mu.Unlock()
	if f != nil {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		code := CodeInternalError
		if f.status == http.StatusTooManyRequests {
			code = CodeTooMany
		}
		writeError(w, f.status, code, http.StatusText(f.status))
		return
	}
	m := Message{
		AccountSID:          s.accountSID,
		To:                  r.PostForm.Get("To"),
		From:                r.PostForm.Get("From"),
		MessagingServiceSID: r.PostForm.Get("MessagingServiceSid"),
		Body:                r.PostForm.Get("Body"),
		Status:              "queued",
		DateCreated:         time.Now().UTC(),
	}
	switch {
	case m.To == "":
		writeError(w, http.StatusBadRequest, CodeToRequired, "A 'To' phone number is required.")
		return
	case !e164(m.To):
		writeError(w, http.StatusBadRequest, CodeInvalidTo, fmt.Sprintf("The 'To' number %s is not a valid phone number.", m.To))
		return
	case m.From == "" && m.MessagingServiceSID == "":
		writeError(w, http.StatusBadRequest, CodeFromRequired, "A 'From' phone number is required.")
		return
	case m.Body == "":
		writeError(w, http.StatusBadRequest, CodeBodyRequired, "Message body is required.")
		return
	case utf8.RuneCountInString(m.Body) > 1600:
		writeError(w, http.StatusBadRequest, CodeBodyTooLong, "The concatenated message body exceeds the 1600 character limit.")
		return
	}
	if m.MessagingServiceSID != "" {
		m.Status = "accepted"
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	m.SID = "SM" + hex.EncodeToString(b)
	s.mu.Lock()
	s.messages = append(s.messages, m)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid":                   m.SID,
		"account_sid":           m.AccountSID,
		"to":                    m.To,
		"from":                  nullIfEmpty(m.From),
		"messaging_service_sid": nullIfEmpty(m.MessagingServiceSID),
		"body":                  m.Body,
		"status":                m.Status,
		"num_segments":          strconv.Itoa(segments(m.Body)),
		"direction":             "outbound-api",
		"api_version":           "2010-04-01",
		"date_created":          m.DateCreated.Format(time.RFC1123Z),
		"uri":                   r.URL.Path[:len(r.URL.Path)-len(".json")] + "/" + m.SID + ".json",
	})
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	more := ""
	if code != 0 {
		more = fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "more_info": more, "status": status})
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// segments is GSM-7's 160 (153 when split) or UCS-2's 70 (67) per part,
// roughly: any non-ASCII rune switches to UCS-2.
func segments(body string) int {
	n, per, first := utf8.RuneCountInString(body), 153, 160
	for _, r := range body {
		if r > 127 {
			per, first = 67, 70
			break
		}
	}
	if n <= first {
		return 1
	}
	return (n + per - 1) / per
}

func e164(s string) bool {
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
