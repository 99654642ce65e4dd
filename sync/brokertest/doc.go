// Package brokertest starts MQTT brokers for tests: the embedded mochi
// broker (package broker) in process, and a real mosquitto as a child process
// with a config, password file, ACL and persistence in t.TempDir(). Both apply
// the access rules of sync/README.md, so one test body runs against each:
//
//	for _, k := range brokertest.Kinds(t) {
//		t.Run(string(k), func(t *testing.T) {
//			b := brokertest.Start(t, k, brokertest.Options{TLS: true})
//			... paho clients on b.URL(), b.TLSURL(), b.CertURL() ...
//		})
//	}
//
// Kinds always includes mochi and includes mosquitto when its binary is
// installed (Debian package mosquitto; .ci/run installs it). Under CI=true a
// missing mosquitto fails the test instead of being skipped quietly.
//
// Ports are picked free on 127.0.0.1 at start and kept across Restart, as a
// box reconnecting to the same URL would expect. TestCerts makes a CA, a
// server certificate for 127.0.0.1/localhost and client certificates whose CN
// is a box id, at test time with crypto/x509.
//
// It is for tests only: every function takes a testing.TB and fails the test
// rather than returning an error. It lives outside internal/ so that the
// commands' end-to-end tests (cmd/smartboxd, cmd/smartbox-bridge) start their
// brokers and make their certificates with it too, instead of keeping copies.
package brokertest
