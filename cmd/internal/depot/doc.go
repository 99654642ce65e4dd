// Package depot is a whole SmartBox installation on one machine, for the
// simulator (cmd/smartbox-sim), its scenarios and the chaos run: the bridge
// service in-process with its embedded broker, a fake Fleetio account,
// SMTP and SMS catchers for what the bridge sends, and N boxes, each a real
// smartboxd process on simulated pins and a pseudo-terminal reader, its card
// made by the real `smartboxctl provision`, its MQTT connection (mutual TLS,
// its client certificate) through a TCP proxy the depot can cut. Selftest
// runs the real `smartboxctl selftest` on a box with a scripted technician.
package depot
