package tomlconf

import "net"

// LoopbackHost says whether host (a URL's host, without the port) names
// this machine: "localhost" or a loopback address (127.0.0.0/8, ::1). It
// never resolves a name: a config check must not depend on DNS, and a name
// that resolves to loopback today may not tomorrow.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
