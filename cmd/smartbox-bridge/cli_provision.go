package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
)

// The provisioning commands: what the bridge tells a new box, and the
// offline path (`smartboxctl provision --offline` prints a record that the
// admin carries here).

// maxRecordFile bounds a provisioning record: a registration and a CSR of
// under 8 KiB; a path mistyped to something big must not be read whole.
const maxRecordFile = 64 << 10

// replaceUsage is register-box's --replace, with or without --record.
const replaceUsage = "replace a box of this id that the bridge has with another key or certificate " +
	"(a new card for it): without it that is refused, as a mistyped id would cut the real box off"

// certFileMode: a certificate is public, but it names a box; no need for
// others to write it.
const certFileMode = 0o644

// isRecordCall says whether register-box was given --record: the offline
// path, whose flags are not the registration's.
func isRecordCall(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "record" {
			return true
		}
	}
	return false
}

// cmdRegisterRecord is `register-box --record FILE [--cert-out FILE]`: it
// registers the box the record describes and has the bridge's CA sign its
// certificate request, writing the certificate to --cert-out or stdout.
func cmdRegisterRecord(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("register-box", stderr)
	record := fset.String("record", "", "provisioning record from `smartboxctl provision --offline` (JSON)")
	certOut := fset.String("cert-out", "", "write the box's certificate (PEM) here; none: stdout")
	replace := fset.Bool("replace", false, replaceUsage)
	return cli.Call(fset, args, nil, func([]string) (adminapi.CertificateResponse, error) {
		var resp adminapi.CertificateResponse
		if err := required("record", *record); err != nil {
			return resp, err
		}
		rec, err := readRecord(*record)
		if err != nil {
			return resp, err
		}
		c, err := newAdminClient(d)
		if err != nil {
			return resp, err
		}
		rec.Register.Replace = *replace
		var info adminapi.BoxInfo
		if err := c.do(ctx, "POST", "/v1/boxes", rec.Register, &info); err != nil {
			return resp, fmt.Errorf("register box %s from %s: %w", rec.Register.ID, *record, err)
		}
		fmt.Fprintf(stderr, "registered box %s\n", info.ID)
		err = c.do(ctx, "POST", "/v1/boxes/"+esc(rec.Register.ID)+"/certificate", adminapi.CertificateRequest{CSR: rec.CSR, Replace: *replace}, &resp)
		if err != nil {
			return resp, fmt.Errorf("certificate for box %s from %s: %w", rec.Register.ID, *record, err)
		}
		return resp, nil
	}, func(resp adminapi.CertificateResponse) error {
		if *certOut == "" {
			_, err := io.WriteString(stdout, resp.Certificate)
			return err
		}
		if err := writeFileAtomic(*certOut, []byte(resp.Certificate), certFileMode); err != nil {
			return fmt.Errorf("--cert-out: %w", err)
		}
		fmt.Fprintf(stderr, "certificate (valid until %s) written to %s: copy it to the box as its cloud client certificate\n",
			resp.NotAfter.Format("2006-01-02"), *certOut)
		return nil
	})
}

// readRecord reads and checks a provisioning record file.
func readRecord(path string) (adminapi.ProvisionRecord, error) {
	var rec adminapi.ProvisionRecord
	f, err := os.Open(path)
	if err != nil {
		return rec, fmt.Errorf("--record: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordFile+1))
	if err != nil {
		return rec, fmt.Errorf("--record %s: %w", path, err)
	}
	if len(b) > maxRecordFile {
		return rec, fmt.Errorf("--record %s: over %d bytes: not a provisioning record", path, maxRecordFile)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("--record %s: not a provisioning record (smartboxctl provision --offline): %w", path, err)
	}
	if rec.Register.ID == "" || rec.CSR == "" {
		return rec, fmt.Errorf("--record %s: needs register.id and csr", path)
	}
	return rec, nil
}

// writeFileAtomic writes b to path through a temporary file and a rename,
// so that a failure leaves the old file or none, never half a certificate.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.Write(b)
	err = errors.Join(err, f.Chmod(mode), f.Sync(), f.Close())
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// cmdProvisioning prints what GET /v1/provisioning answers, for people:
// the broker URL, the signing key and the CA a new box is given.
func cmdProvisioning(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("provisioning", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/provisioning"), func(p adminapi.ProvisioningResponse) error {
		url := p.BrokerURL
		if url == "" {
			url = "(unknown: set [broker] box_url, or give smartboxctl provision --broker)"
		}
		fmt.Fprintf(stdout, "broker URL:   %s\n", url)
		fmt.Fprintf(stdout, "signing key:  %s\n", p.SigningKey.Line)
		if pub, err := base64.StdEncoding.DecodeString(p.SigningKey.PublicKey); err == nil {
			fmt.Fprintf(stdout, "  fingerprint %s (smartboxctl provision prints it; --expect-signing-key takes either)\n", adminapi.Fingerprint(pub))
		}
		if blk, _ := pem.Decode([]byte(p.CACert)); blk != nil {
			if ca, err := x509.ParseCertificate(blk.Bytes); err == nil {
				fmt.Fprintf(stdout, "CA:           %s (valid until %s)\n", ca.Subject.CommonName, ca.NotAfter.Format("2006-01-02"))
				fmt.Fprintf(stdout, "  fingerprint %s\n", adminapi.Fingerprint(blk.Bytes))
			}
		}
		_, err := io.WriteString(stdout, p.CACert)
		return err
	})
}
