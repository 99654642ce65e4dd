package adminapi

import (
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// ErrorResponse is every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// RegisterBoxRequest is POST /v1/boxes.
type RegisterBoxRequest struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`         // the box's X25519 key, base64
	Password  string `json:"password,omitempty"` // MQTT password; "" keeps the current one
	// Slots is how many key slots the box has (0 keeps the number known);
	// Name and Location are what drivers are told to find it ("" keeps).
	Slots    int    `json:"slots,omitempty"`
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"`
	// Replace allows a new public key for a box registered with another
	// one (a new card for the box): without it that is a 409 Conflict, so
	// that a mistyped box id does not silently take over another box.
	Replace bool `json:"replace,omitempty"`
}

// BoxInfo is one box of GET /v1/boxes, and the answer to POST /v1/boxes.
type BoxInfo struct {
	ID          string `json:"id"`
	Revision    uint64 `json:"revision"` // the cloud's records revision for the box
	HasPassword bool   `json:"has_password"`
	// ExternalBroker: box passwords are the external broker's business
	// (its password file); the one kept here is not used.
	ExternalBroker bool         `json:"external_broker,omitempty"`
	Status         *wire.Status `json:"status,omitempty"` // nil: the box never sent one
	Slots          int          `json:"slots,omitempty"`
	Name           string       `json:"name,omitempty"`
	Location       string       `json:"location,omitempty"`
	// CertNotAfter is when the box's current client certificate from the
	// bridge's CA expires; zero: it has none.
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	// CertSerial is that certificate's serial (hex, as the broker checks
	// it); "": none. A card whose box.crt has another serial is shut out.
	CertSerial string `json:"cert_serial,omitempty"`
}

// SigningKeyResponse is GET /v1/signing-key: the public half only.
type SigningKeyResponse struct {
	KeyID     string `json:"kid"`
	PublicKey string `json:"public_key"`
	Line      string `json:"line"` // kid=base64, for smartboxctl provision
}

// ProvisioningResponse is GET /v1/provisioning: what `smartboxctl provision`
// fetches from the bridge for a new box, so that a technician pastes
// nothing. Everything in it is public.
type ProvisioningResponse struct {
	// BrokerURL is where boxes connect ("ssl://host:8883"): the bridge's
	// configured [broker] box_url, else the embedded broker's TLS listener
	// as the bridge sees it. "" when the bridge cannot say (the technician
	// then gives --broker).
	BrokerURL string `json:"broker_url,omitempty"`
	// CACert is the PEM of the bridge's CA (DATA/ca.crt, made on first
	// start): it signs the embedded broker's server certificate and the
	// boxes' client certificates. A box trusts it as cloud.ca_file.
	CACert string `json:"ca_cert"`
	// SigningKey is the key batches are signed with (as GET /v1/signing-key).
	SigningKey SigningKeyResponse `json:"signing_key"`
}

// CertificateRequest is POST /v1/boxes/{box}/certificate: a PKCS#10
// certificate request (PEM) whose subject CN is the box id, made by the
// technician's tool with a key that never leaves the box's card. The box
// must be registered first (POST /v1/boxes).
type CertificateRequest struct {
	CSR string `json:"csr"`
	// Replace allows a certificate for a new key while the box has a
	// current one for another key: without it that is a 409 Conflict, as
	// the new certificate shuts the old one out (broker.BoxCertSerial).
	Replace bool `json:"replace,omitempty"`
}

// CertificateResponse answers it: the client certificate the bridge's CA
// signed (PEM, CN = box id, client-auth only), and the CA.
type CertificateResponse struct {
	Certificate string    `json:"certificate"`
	CACert      string    `json:"ca_cert"`
	NotAfter    time.Time `json:"not_after"`
}

// ProvisionRecord is what `smartboxctl provision --offline` prints for a
// box provisioned without reaching the bridge, for the admin to carry to
// it (`smartbox-bridge register-box --record FILE`): the registration and
// the certificate request. Nothing in it is secret.
type ProvisionRecord struct {
	Register RegisterBoxRequest `json:"register"`
	CSR      string             `json:"csr"` // PEM, CN = Register.ID
}
