package bridge

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// adminBodyRoute is one admin route that reads a JSON body; %s in path is
// the fuzzed path segment (a key, grant, vehicle, assignment or contact id),
// def the segment when the fuzzer gives none.
type adminBodyRoute struct {
	method, path, def string
}

// adminBodyRoutes are the admin routes that read a body, all but POST
// /v1/fleetio/connect: its body names the Fleetio base_url the bridge then
// calls, and a fuzzer must not make the bridge call out.
var adminBodyRoutes = []adminBodyRoute{
	{http.MethodPost, "/v1/boxes", ""},
	{http.MethodPut, "/v1/boxes/depot-1/keys/%s", "van-8"},
	{http.MethodPut, "/v1/boxes/depot-1/grants/%s", "booking-1"},
	{http.MethodPost, "/v1/boxes/depot-1/commands", ""},
	{http.MethodPost, "/v1/boxes/%s/certificate", "depot-1"},
	{http.MethodPut, "/v1/fleetio/code-mode", ""},
	{http.MethodPut, "/v1/fleetio/links/%s", "1234"},
	{http.MethodPost, "/v1/fleetio/reservations/%s/book", "77"},
	{http.MethodPut, "/v1/fleetio/drivers/%s/code", "55"},
}

// FuzzAdminBody sends fuzzed request bodies (and path ids) to the real
// admin handler of a bridge with a registered box and a key. Whatever the
// body, the answer is 2xx or 4xx, never 5xx (the bridge's own fault) nor a
// panic; an error answer is JSON with a message, and a 2xx is JSON.
//
// Fleetio is not connected, so its routes refuse (409) without calling
// out; in case one ever tried, the Fleetio client the bridge would make
// fails instead of dialling, which shows here as a 5xx.
func FuzzAdminBody(f *testing.F) {
	s, err := Start(context.Background(), Options{DataDir: f.TempDir(),
		Logger: slog.New(slog.DiscardHandler),
		Fleetio: FleetioOptions{ReconcileEvery: -1, Tune: func(o *bookings.Options) {
			o.NewClient = func(bookings.Settings) (*fleetio.Client, error) {
				return nil, errors.New("fuzzing: the bridge must not call Fleetio")
			}
		}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Cloud().RegisterBox("depot-1", boxKey.PublicKey().Bytes()); err != nil {
		f.Fatal(err)
	}
	if _, err := s.Cloud().PutKey("depot-1", box.Key{ID: "van-7", FobUID: "0100073400", Slot: 3}); err != nil {
		f.Fatal(err)
	}
	h := s.adminHandler()
	auth := "Bearer " + s.AdminToken()

	pub := base64.StdEncoding.EncodeToString(boxKey.PublicKey().Bytes())
	f.Add(uint8(0), "", []byte(`{"id":"depot-2","public_key":"`+pub+`","password":"pw","slots":12,"name":"Depot 2","location":"yard"}`))
	f.Add(uint8(0), "", []byte(`{"id":"depot-1","public_key":"AAAA","replace":true}`))
	f.Add(uint8(1), "van-8", []byte(`{"name":"Van 8","fob_uid":"01 00 07 34 01","slot":4}`))
	f.Add(uint8(1), "van-9", []byte(`{"fob_uid":"0100073400","slot":5}`))
	f.Add(uint8(2), "booking-1", []byte(`{"kind":"booking","code":"482135","key_ids":["van-7"],"from":"2026-11-01T09:00:00Z","until":"2026-11-01T17:00:00Z","max_uses":2}`))
	f.Add(uint8(2), "drv-1", []byte(`{"kind":"driver_code","code":"1234","driver_ref":"77"}`))
	f.Add(uint8(2), "g", []byte(`{"kind":"booking","key_ids":["van-7"],"max_use":1}`))
	f.Add(uint8(3), "", []byte(`{"kind":"release_slot","slot":3,"by":"ann","reason":"lost pin","ttl":"5m"}`))
	f.Add(uint8(3), "", []byte(`{"kind":"resync","by":"ops","reason":"check","ttl":"-1h"}`))
	f.Add(uint8(4), "depot-1", []byte(`{"csr":`+jsonString(f, testCSR(f, "depot-1"))+`}`))
	f.Add(uint8(4), "depot-1", []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add(uint8(5), "", []byte(`{"mode":"per_driver"}`))
	f.Add(uint8(6), "1234", []byte(`{"box_id":"depot-1","key_id":"van-7","method":"prompt"}`))
	f.Add(uint8(7), "77", []byte(`{"from":"2026-11-01T09:00:00Z","until":"2026-11-01T17:00:00Z","contact":"sms"}`))
	f.Add(uint8(8), "55", []byte(`{"code":"12345678"}`))
	f.Add(uint8(8), "-1", []byte(`{"code":1}`))
	f.Fuzz(func(t *testing.T, route uint8, seg string, body []byte) {
		rt := adminBodyRoutes[int(route)%len(adminBodyRoutes)]
		if seg == "" {
			seg = rt.def
		}
		path := rt.path
		if strings.Contains(path, "%s") {
			path = strings.Replace(path, "%s", url.PathEscape(seg), 1)
		}
		req := httptest.NewRequest(rt.method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		res := rec.Result()
		got, _ := io.ReadAll(res.Body)
		code := res.StatusCode
		if code == http.StatusNotFound && res.Header.Get("Content-Type") != "application/json" {
			// The mux's own 404 (a path id like ".." that routes nowhere,
			// after cleaning): no handler ran.
			return
		}
		if code == http.StatusMethodNotAllowed || code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect {
			return // the mux's own answer to a path the cleaning moved
		}
		if (code < 200 || code > 299) && (code < 400 || code > 499) {
			t.Fatalf("%s %s: status %d: %s", rt.method, path, code, got)
		}
		if !json.Valid(got) {
			t.Fatalf("%s %s: status %d, not JSON: %q", rt.method, path, code, got)
		}
		if code >= 400 {
			var e adminapi.ErrorResponse
			if err := json.Unmarshal(got, &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: status %d without an error message: %q", rt.method, path, code, got)
			}
		}
	})
}

// testCSR is a certificate request for boxID as smartboxctl makes one.
func testCSR(t testing.TB, boxID string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: boxID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func jsonString(t testing.TB, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
