package bridge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// /readyz says 200 "ready" once the cloud is subscribed at the broker; on
// PostgreSQL a database that does not answer is 503, named.
func TestReadyz(t *testing.T) {
	b := startTest(t, Options{})
	<-b.Ready()
	get := func() (int, string) {
		resp, err := http.Get(b.PublicURL() + "/readyz")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		return resp.StatusCode, string(body)
	}
	code, body := get()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready\n", body)

	if b.pool != nil {
		b.pool.Close() // the database gone, as far as this replica can tell
		code, body = get()
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: database not answering\n", body)
	}

	// Stopping: not ready, whatever else holds (the handler called
	// directly: the listener closes soon after).
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.stopping
	rec := httptest.NewRecorder()
	b.readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "not ready: shutting down\n", rec.Body.String())
}
