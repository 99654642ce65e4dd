package broker

import (
	"bytes"
	"crypto/x509"
	"math/big"
)

// certCheck holds back client certificates of the bridge's own CA that are
// no longer a box's current one: a card stolen from a box keeps a valid
// certificate until the box is provisioned again, and from then on only
// the new serial is let in. Certificates from an operator's own
// client_ca_file are that operator's business (their CRLs, their
// lifetimes) and are not checked here.
type certCheck struct {
	ca     *x509.Certificate
	serial func(box string) (*big.Int, bool)
}

// refuse says why the verified chains' leaf may not connect as box, or "".
// A leaf is subject to the check when any chain ends in the bridge's CA.
func (c certCheck) refuse(box string, chains [][]*x509.Certificate) string {
	if c.ca == nil || !c.issued(chains) {
		return ""
	}
	if c.serial == nil {
		return "client certificate from the bridge CA, but no serial lookup to check it against"
	}
	want, ok := c.serial(box)
	if !ok {
		return "client certificate from the bridge CA, but the box has no current certificate (never issued, or box unknown)"
	}
	if chains[0][0].SerialNumber.Cmp(want) != 0 {
		return "client certificate from the bridge CA is not the box's current one (replaced by a later provisioning)"
	}
	return ""
}

// hasCert says whether box has a current certificate from the bridge's CA:
// it then may not log in with a password.
func (c certCheck) hasCert(box string) bool {
	if c.ca == nil || c.serial == nil || box == "" {
		return false
	}
	_, ok := c.serial(box)
	return ok
}

func (c certCheck) issued(chains [][]*x509.Certificate) bool {
	for _, ch := range chains {
		if root := ch[len(ch)-1]; bytes.Equal(root.Raw, c.ca.Raw) {
			return true
		}
	}
	return false
}
