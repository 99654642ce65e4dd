// Package adminapi is the bridge's admin API as its clients see it: the
// requests and answers a box's provisioning needs (registration, the
// provisioning facts, certificates, the offline record) and the client
// (AdminClient) that the CLIs and the simulator call it with. It imports
// none of the bridge service, so that smartboxctl, which runs on the box,
// carries no broker, cloud store or Fleetio integration in its binary.
// The service (sync/bridge) answers with these types.
package adminapi
