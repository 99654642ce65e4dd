package boxsocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
)

// Client bounds.
const (
	// RequestTimeout bounds one request (not Watch): the socket is local,
	// so an answer that takes longer means a stuck daemon. Press adds the
	// time its keys take to type.
	RequestTimeout = 10 * time.Second
	// maxAnswer caps an answer body: MaxEvents events are well under it.
	maxAnswer = 8 << 20
	// maxWatchLine caps one SSE line (one Watch message).
	maxWatchLine = 8 << 20
	// pressPerKey is the typing time Press allows per key on top of its
	// hold: a tap waits for the scanner's debounce on press and release.
	pressPerKey = 500 * time.Millisecond
)

// Error is a non-2xx answer from the socket.
type Error struct {
	Status  int    // HTTP status
	Message string // the daemon's reason (ErrorResponse.Error)
}

func (e *Error) Error() string {
	return fmt.Sprintf("smartboxd socket: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Client calls one smartboxd's local socket.
type Client struct {
	path string
	http *http.Client
}

// Dial returns a client of the socket at path. Nothing is connected until a
// request.
func Dial(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	// No Client.Timeout: Watch streams for as long as its ctx lives; every
	// other request bounds itself with RequestTimeout.
	return &Client{path: path, http: &http.Client{Transport: tr}}
}

// Path is the socket's path.
func (c *Client) Path() string { return c.path }

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Status is the box in one answer.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st, RequestTimeout)
	return st, err
}

// Slots is every slot.
func (c *Client) Slots(ctx context.Context) ([]Slot, error) {
	var s []Slot
	err := c.do(ctx, http.MethodGet, "/v1/slots", nil, &s, RequestTimeout)
	return s, err
}

// Keys is the box's keys.
func (c *Client) Keys(ctx context.Context) ([]box.Key, error) {
	var k []box.Key
	err := c.do(ctx, http.MethodGet, "/v1/keys", nil, &k, RequestTimeout)
	return k, err
}

// Events is at most limit events after seq after (limit 0: the daemon's
// default).
func (c *Client) Events(ctx context.Context, after uint64, limit int) ([]box.Event, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var evs []box.Event
	err := c.do(ctx, http.MethodGet, "/v1/events?"+q.Encode(), nil, &evs, RequestTimeout)
	return evs, err
}

// Watch reads /v1/watch?after= and calls fn with each message, in order. It
// returns ctx's error when ctx ends, fn's error if fn fails, and an error
// saying so if the daemon ends the stream.
func (c *Client) Watch(ctx context.Context, after uint64, fn func(Watch) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://smartboxd/v1/watch?after="+strconv.FormatUint(after, 10), nil)
	if err != nil {
		return fmt.Errorf("watching %s: %w", c.path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("watching %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxWatchLine)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // a comment (heartbeat), a blank separator, a field we do not use
		}
		var w Watch
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &w); err != nil {
			return fmt.Errorf("watching %s: decoding a message: %w", c.path, err)
		}
		if err := fn(w); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watching %s: the stream broke: %w", c.path, err)
	}
	return fmt.Errorf("watching %s: the daemon ended the stream", c.path)
}

// Press types keys on the simulated keypad, each held hold (0: the
// daemon's default); it returns once every key was read.
func (c *Client) Press(ctx context.Context, keys string, hold time.Duration) error {
	per := pressPerKey + 2*hold
	timeout := RequestTimeout + time.Duration(len(keys))*per
	return c.do(ctx, http.MethodPost, "/v1/sim/keypad", KeypadRequest{Keys: keys, HoldMS: int(hold / time.Millisecond)}, nil, timeout)
}

// Take takes the key out of released slot.
func (c *Client) Take(ctx context.Context, slot int) error {
	return c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/sim/slots/%d/take", slot), nil, nil, RequestTimeout)
}

// PutBack seats a key in released slot.
func (c *Client) PutBack(ctx context.Context, slot int) error {
	return c.do(ctx, http.MethodPost, fmt.Sprintf("/v1/sim/slots/%d/put-back", slot), nil, nil, RequestTimeout)
}

// SetFault sets or clears slot's faults.
func (c *Client) SetFault(ctx context.Context, slot int, f SlotFault) error {
	return c.do(ctx, http.MethodPut, fmt.Sprintf("/v1/sim/slots/%d/fault", slot), f, nil, RequestTimeout)
}

// Reader holds a fob at the reader or writes raw bytes on its line; it
// returns once the fob has left the reader.
func (c *Client) Reader(ctx context.Context, r ReaderRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/sim/reader", r, nil, RequestTimeout+MaxFobHold)
}

// SetClock sets the simulated board's clock.
func (c *Client) SetClock(ctx context.Context, r ClockRequest) error {
	return c.do(ctx, http.MethodPut, "/v1/sim/clock", r, nil, RequestTimeout)
}

// do sends body (JSON, if not nil) and decodes a 2xx answer into out (if
// not nil); a non-2xx answer is an *Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://smartboxd"+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", method, path, c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// readError turns a non-2xx answer into an *Error, with the body's text if
// it is not an ErrorResponse.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxRequestBody))
	e := &Error{Status: resp.StatusCode}
	var er ErrorResponse
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		e.Message = er.Error
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

// IsStatus reports whether err is an *Error with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == code
}
