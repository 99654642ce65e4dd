// Package netcut is a loopback TCP proxy that the simulator puts between a
// box (a real smartboxd process) and its MQTT broker, so that it can cut a
// box's network and restore it: the "cut a box's network" fault of the
// simulator's page and the offline scenarios. The box's config points at the
// proxy's address; the proxy dials the broker for each connection it accepts.
//
//	p, err := netcut.Listen("", brokerAddr, log) // 127.0.0.1:<free port>
//	defer p.Close()
//	... box connects to "tcp://" + p.Addr() ...
//	p.Cut(netcut.Reset)     // or netcut.Blackhole
//	p.Restore()
//
// # Modes
//
// Reset is a link that goes down hard: every live connection is reset (a
// TCP RST) at once on both sides, so the box and the broker each see the
// other go, and while cut a new connection is accepted and reset at once, as
// a refused reconnect would be.
//
// Blackhole is a pulled cable: live connections stay open but nothing is
// forwarded in either direction (what is read is dropped and counted in
// Dropped), and new connections are accepted and held silent, never dialled
// upstream. Neither end learns of it until its own keepalive gives up, which
// is what a box must survive in the field. On Restore every connection that
// lived through the blackhole is closed, since the bytes it lost would leave
// the MQTT streams out of step, and new connections flow again. Bytes that
// were read before Cut returned may still be written after it: they were
// already on the wire.
//
// # Bounds
//
// A dial to the upstream gives up after dialTimeout: on loopback the broker
// answers at once or refuses, so a longer wait only means it is wedged, and
// the box's connection is closed as if the broker had refused it. An accept
// error that is not the listener closing (say, out of file descriptors) is
// retried after acceptRetry rather than ending the proxy. There is no limit
// on connections: the simulator has one box per proxy.
//
// A half-close is passed on (the other side's write half is closed), so a
// connection ends when both directions have; an error in either direction
// closes both. Close stops the listener, closes every connection and waits
// for every goroutine the proxy started.
package netcut
