package main

import "github.com/smartbox-oss/smartbox/sync/bridge"

// The admin API's types and the data directory's file names are
// sync/bridge's; these names keep the CLI (client.go, cli_fleetio.go)
// reading as it did.
type (
	registerBoxRequest    = bridge.RegisterBoxRequest
	putKeyRequest         = bridge.PutKeyRequest
	putGrantRequest       = bridge.PutGrantRequest
	commandRequest        = bridge.CommandRequest
	revisionResponse      = bridge.RevisionResponse
	boxInfo               = bridge.BoxInfo
	commandResponse       = bridge.CommandResponse
	commandResultResponse = bridge.CommandResultResponse
	errorResponse         = bridge.ErrorResponse
	connectRequest        = bridge.ConnectRequest
	connectResponse       = bridge.ConnectResponse
	fleetioStatus         = bridge.FleetioStatus
	codeModeRequest       = bridge.CodeModeRequest
	linkRequest           = bridge.LinkRequest
	bookRequest           = bridge.BookRequest
	driverCodeRequest     = bridge.DriverCodeRequest
	bookingRow            = bridge.BookingRow
)

const (
	fileSigningKey    = bridge.FileSigningKey
	fileAdminToken    = bridge.FileAdminToken
	fileAdminAddr     = bridge.FileAdminAddr
	maxSlots          = bridge.MaxSlots
	defaultCommandTTL = bridge.DefaultCommandTTL
	maxSecretFile     = bridge.MaxSecretFile
)

var (
	parseSigningKey = bridge.ParseSigningKey
	publicKeyLine   = bridge.PublicKeyLine
)

// cmpOr is the first of a and b that is not "".
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
