package twiliotest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/notify/twiliotest"
)

func TestFakeAnswers(t *testing.T) {
	fake := twiliotest.New("AC1", "tok")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	ok := url.Values{"To": {"+15555550100"}, "From": {"+15555550199"}, "Body": {"hi"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range ok {
			f[kk] = vv
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tests := []struct {
		name       string
		path       string
		user, pass string
		form       url.Values
		status     int
		code       int
	}{
		{"created", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "tok", ok, 201, 0},
		{"bad token", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "bad", ok, 401, twiliotest.CodeAuth},
		{"other account", "/2010-04-01/Accounts/AC2/Messages.json", "AC1", "tok", ok, 404, twiliotest.CodeNotFound},
		{"wrong path", "/2010-04-01/Accounts/AC1/Calls.json", "AC1", "tok", ok, 404, twiliotest.CodeNotFound},
		{"no To", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "tok", with("To", ""), 400, twiliotest.CodeToRequired},
		{"bad To", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "tok", with("To", "12345"), 400, twiliotest.CodeInvalidTo},
		{"no From", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "tok", with("From", ""), 400, twiliotest.CodeFromRequired},
		{"no Body", "/2010-04-01/Accounts/AC1/Messages.json", "AC1", "tok", with("Body", ""), 400, twiliotest.CodeBodyRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+tt.path, strings.NewReader(tt.form.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(tt.user, tt.pass)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, tt.status, resp.StatusCode)
			var body map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			if tt.code != 0 {
				require.EqualValues(t, tt.code, body["code"])
				require.EqualValues(t, tt.status, body["status"])
				require.NotEmpty(t, body["message"])
				return
			}
			require.Equal(t, "queued", body["status"])
			require.Equal(t, "+15555550100", body["to"])
		})
	}
	require.Len(t, fake.Messages(), 1)
}

func TestFakeChanged(t *testing.T) {
	fake := twiliotest.New("AC1", "tok")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	ch := fake.Changed()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/2010-04-01/Accounts/AC1/Messages.json",
			strings.NewReader("To=%2B15555550100&MessagingServiceSid=MG1&Body=hi"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("AC1", "tok")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	require.Equal(t, "accepted", fake.Messages()[0].Status)
}
