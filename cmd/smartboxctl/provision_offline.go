package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/smartbox-oss/smartbox/store"
)

// installCertificate is `provision --target DIR --certificate FILE`: the
// last step of an --offline provisioning, once the bridge signed the
// record's request. The certificate must be for the card's box (CN) and its
// device key, from the CA on the card.
func installCertificate(target, file string, stdout io.Writer) error {
	certPEM, err := readBounded(file)
	if err != nil {
		return fmt.Errorf("--certificate: %w", err)
	}
	if err := checkCardNames(target); err != nil {
		return err
	}
	var boxID string
	if err := withStore(target, 0, func(s *store.Store) error {
		id, err := s.Identity()
		boxID = id.BoxID
		return err
	}); err != nil {
		return fmt.Errorf("--target: %w (provision the card first: smartboxctl provision --offline)", err)
	}
	key, err := loadDeviceKey(filepath.Join(target, relDeviceKey))
	if err != nil {
		return fmt.Errorf("the card's device key: %w (provision the card first: smartboxctl provision --offline)", err)
	}
	caPEM, err := readBounded(filepath.Join(target, relCA))
	if err != nil {
		return fmt.Errorf("the card's CA: %w (provision the card first: smartboxctl provision --offline)", err)
	}
	c, err := checkCertificate(certPEM, key, boxID, caPEM, file)
	if err != nil {
		return fmt.Errorf("%w (nothing was changed)", err)
	}
	st, err := newStage(target)
	if err != nil {
		return err
	}
	defer st.remove()
	if err := st.write(relCert, certPEM, modePublic); err != nil {
		return err
	}
	if err := st.install(false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: installed the client certificate for box %s (tls/box.crt, until %s)\n",
		target, boxID, c.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
