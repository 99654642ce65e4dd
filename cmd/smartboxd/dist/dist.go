// Package dist holds the files a SmartBox firmware package installs beside
// the binaries, checked in where a reader of cmd/smartboxd looks for them
// and embedded into the packager (cmd/internal/firmware).
package dist

import _ "embed"

// Unit is smartboxd.service, the hardened systemd unit (every line says
// why). It expects /usr/bin/smartboxd and a provisioned /var/lib/smartbox.
//
//go:embed smartboxd.service
var Unit []byte
