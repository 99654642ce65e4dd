package adminapi

import (
	"context"
	"net/http"
	"net/url"
)

// Provisioning is GET /v1/provisioning: the broker URL, CA and signing
// key a new box is given.
func (c *AdminClient) Provisioning(ctx context.Context) (ProvisioningResponse, error) {
	var out ProvisioningResponse
	err := c.Do(ctx, http.MethodGet, "/v1/provisioning", nil, &out)
	return out, err
}

// Certificate is POST /v1/boxes/{box}/certificate: the bridge's CA signs
// csrPEM (CN = box) for the registered box, and from then on only that
// certificate lets the box into the embedded broker. replace is
// CertificateRequest.Replace.
func (c *AdminClient) Certificate(ctx context.Context, box string, csrPEM []byte, replace bool) (CertificateResponse, error) {
	var out CertificateResponse
	err := c.Do(ctx, http.MethodPost, "/v1/boxes/"+url.PathEscape(box)+"/certificate", CertificateRequest{CSR: string(csrPEM), Replace: replace}, &out)
	return out, err
}
