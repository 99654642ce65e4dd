// Package brokertest starts MQTT brokers for sync tests: the embedded mochi
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
package brokertest
