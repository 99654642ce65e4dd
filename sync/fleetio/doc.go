// Package fleetio talks to Fleetio (fleet management) for the SmartBox
// bridge: a small API client (users/me, vehicles, contacts, vehicle
// assignments and their custom fields) and webhook verification and parsing.
//
// # Requests
//
// Every request carries "Authorization: Token <API key>", "Account-Token"
// and a pinned "X-Api-Version": a Fleetio key is locked to a dated API
// version, and pinning it keeps the shapes in types.go stable when the
// account's default moves on. List endpoints use cursor pages: the client
// sends start_cursor (Fleetio's docs) and stops when next_cursor is empty.
//
// # Retries
//
// HTTP 429 waits at least Retry-After seconds (capped, so a wild value
// cannot stall the bridge); 5xx answers and network errors are retried with
// capped exponential back-off and full jitter (sync/internal/retry, the
// loop the SMS client uses too) up to Options.MaxRetries. Any other 4xx is final and
// returned as *APIError carrying the status and Fleetio's error body. No
// error ever contains the API key or the account token.
//
// # Webhooks
//
// Fleetio signs a webhook's raw body with HMAC-SHA256 keyed by the webhook's
// secret and sends the lower-case hex in X-Fleetio-Webhook-Signature. No
// timestamp is signed, so VerifyWebhook proves origin, not freshness: the
// receiver de-duplicates by delivery id and trusts the record it reads back
// from the API, not the payload's order.
package fleetio
