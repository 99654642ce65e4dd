// Package dist holds the files a bridge installation puts beside the
// binary, checked in where a reader of cmd/smartbox-bridge looks for them.
package dist

import _ "embed"

// Unit is smartbox-bridge.service, the hardened systemd unit of one replica
// (every line says why).
//
//go:embed smartbox-bridge.service
var Unit []byte
