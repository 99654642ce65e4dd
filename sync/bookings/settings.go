package bookings

import (
	"fmt"
	"log/slog"
)

// Settings are the integration's connection secrets. They are stored in the
// store file (mode 0600) and never logged: LogValue and String mask them.
type Settings struct {
	APIKey        string `json:"api_key"`
	AccountToken  string `json:"account_token"`
	WebhookSecret string `json:"webhook_secret"`
	// Authorization is the fixed Authorization value the Fleetio webhook is
	// configured with; "" means none is checked.
	Authorization string `json:"authorization,omitempty"`
	// BaseURL is Fleetio's API base URL; "" means fleetio.DefaultBaseURL.
	BaseURL string `json:"base_url,omitempty"`
	// CodeMode is how drivers' codes are made; "" is CodePerAssignment.
	// It is kept apart from the secrets (see Store.SetCodeMode), so it
	// outlives a disconnect.
	CodeMode CodeMode `json:"code_mode,omitempty"`
}

// LogValue keeps the secrets out of logs.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", s.BaseURL), slog.String("code_mode", string(s.CodeMode)),
		slog.Bool("api_key_set", s.APIKey != ""), slog.Bool("authorization_set", s.Authorization != ""))
}

// String keeps the secrets out of %v.
func (s Settings) String() string { return "fleetio settings (credentials hidden)" }

// Validate checks that the three values Fleetio gives are there.
func (s Settings) Validate() error {
	switch {
	case s.APIKey == "":
		return fmt.Errorf("%w settings: api_key is empty", ErrInvalid)
	case s.AccountToken == "":
		return fmt.Errorf("%w settings: account_token is empty", ErrInvalid)
	case s.WebhookSecret == "":
		return fmt.Errorf("%w settings: webhook_secret is empty", ErrInvalid)
	}
	return nil
}
