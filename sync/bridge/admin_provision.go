package bridge

import (
	"errors"
	"fmt"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
)

// The provisioning endpoints: what `smartboxctl provision` fetches from
// the bridge (broker URL, CA, signing key) and the box's client
// certificate, signed from a request whose key never leaves the card.

func (s *Service) provisionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/provisioning", s.getProvisioning)
	mux.HandleFunc("POST /v1/boxes/{box}/certificate", s.postCertificate)
}

func (s *Service) getProvisioning(w http.ResponseWriter, _ *http.Request) {
	line := PublicKeyLine(s.signer)
	_, pub, _ := strings.Cut(line, "=")
	writeJSON(w, http.StatusOK, adminapi.ProvisioningResponse{
		BrokerURL:  s.boxBrokerURL(),
		CACert:     string(s.ca.certPEM),
		SigningKey: adminapi.SigningKeyResponse{KeyID: s.signer.KeyID, PublicKey: pub, Line: line},
	})
}

// boxBrokerURL is where boxes connect: [broker] box_url, else the embedded
// TLS listener. A listener on every address (0.0.0.0) names no host a box
// can reach: the first of TLSNames stands for it, or nothing is said and
// the technician gives --broker.
func (s *Service) boxBrokerURL() string {
	if s.o.Broker.BoxURL != "" {
		return s.o.Broker.BoxURL
	}
	addr := s.BrokerTLSAddr()
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if len(s.o.Broker.TLSNames) == 0 {
			return ""
		}
		host = s.o.Broker.TLSNames[0]
	}
	return "ssl://" + net.JoinHostPort(host, port)
}

func (s *Service) postCertificate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("box")
	if !box.ValidID(id) {
		fail(w, http.StatusBadRequest, fmt.Errorf("box id %q: want 1-128 letters, digits or ._:@-", id))
		return
	}
	var req adminapi.CertificateRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if _, err := s.cloud.Revision(id); err != nil {
		if errors.Is(err, cloud.ErrUnknownBox) {
			fail(w, http.StatusNotFound, fmt.Errorf("box %s is not registered: register it first (POST /v1/boxes, smartbox-bridge register-box)", id))
			return
		}
		fail(w, http.StatusInternalServerError, err)
		return
	}
	csr, err := parseBoxCSR(id, []byte(req.CSR))
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	now := time.Now()
	c, err := s.ca.issueBox(id, csr, now)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	// From here on only this certificate lets the box in (broker.BoxCA).
	// Refused, it was never recorded: the broker does not let it in.
	if err := s.accounts.SetCert(id, c, req.Replace, now); err != nil {
		if errors.Is(err, errOtherCert) {
			fail(w, http.StatusConflict, fmt.Errorf("box %s already has a current certificate for another key: is the box id right? "+
				"Replacing it shuts the card that has the old one out (smartboxctl provision --force, smartbox-bridge register-box --replace)", id))
			return
		}
		fail(w, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("box certificate issued", "box", id, "serial", c.Serial.Text(16), "not_after", c.NotAfter)
	writeJSON(w, http.StatusOK, adminapi.CertificateResponse{Certificate: string(c.PEM), CACert: string(s.ca.certPEM), NotAfter: c.NotAfter})
}
