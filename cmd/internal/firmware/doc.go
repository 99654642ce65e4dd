// Package firmware builds SmartBox's firmware: smartboxd and smartboxctl
// cross-compiled for every board (static, CGO off, -trimpath, stamped with
// cmd/internal/buildinfo's version, commit and build time), and per target a
// Debian package (built in Go with goreleaser's nfpm), a tarball of the
// same files, and one SHA256SUMS over them all. `make firmware` runs it
// through mkfirmware; dist/ receives:
//
//	smartbox_<ver>_<target>.deb     apt install ./smartbox_<ver>_arm64.deb
//	smartbox_<ver>_<target>.tar.gz  the same files, rooted at /
//	SHA256SUMS                      sha256sum -c SHA256SUMS
//
// A package installs /usr/bin/smartboxd and /usr/bin/smartboxctl (0755),
// the hardened unit /lib/systemd/system/smartboxd.service (from
// cmd/smartboxd/dist), a udev rule giving /dev/gpiochip* to the gpio group,
// an example config per board profile in /usr/share/smartbox/examples/
// (rendered by cmd/internal/boardprofile, box_id "example-box"), and the
// data directory /var/lib/smartbox (0750). Its postinst creates the system
// user and group smartbox, adds it to gpio and dialout, owns the data
// directory to it and enables (and, on a provisioned card, starts) the unit;
// its prerm stops the unit.
//
// Builds are reproducible: every file's time is the stamped build time.
package firmware
