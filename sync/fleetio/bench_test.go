package fleetio

import (
	"net/http"
	"testing"
)

// BenchmarkVerifyAndParseWebhook is the per-delivery CPU cost at the
// bridge's webhook endpoint before anything is stored: Authorization and
// signature checks, then parsing the delivery and its assignment.
func BenchmarkVerifyAndParseWebhook(b *testing.B) {
	v := WebhookVerifier{Secret: []byte("whsec_0123456789abcdef"), Authorization: "Bearer fixed"}
	body := []byte(sampleDelivery)
	h := http.Header{}
	h.Set(SignatureHeader, Sign(v.Secret, body))
	h.Set("Authorization", v.Authorization)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := v.Verify(h, body); err != nil {
			b.Fatal(err)
		}
		w, err := ParseWebhook(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseAssignment(w.Payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
