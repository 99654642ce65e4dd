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
// # Budget
//
// Options.Budget (Client.WithBudget) is the client side of Fleetio's
// per-account rate limit: every attempt takes a token from it first, and a
// 429's Retry-After pauses it (Budget.Pause) for every caller sharing it,
// not only the one refused. TokenBucket is the one-process Budget; the
// interface lets replicas share one in their database. A caller that must
// not wait while it holds a lock takes its token first and sends with
// Prepaid: its further requests take a token only if one is free
// (ErrBudgetSpent otherwise, nothing sent) and are not retried inside the
// client.
//
// # Webhooks
//
// Fleetio signs a webhook's raw body with HMAC-SHA256 keyed by the webhook's
// secret and sends the lower-case hex in X-Fleetio-Webhook-Signature. No
// timestamp is signed, so VerifyWebhook proves origin, not freshness: the
// receiver de-duplicates by delivery id, acts on a payload only when it is
// newer (updated_at) than what it holds, and confirms by reading the record
// back from the API (sync/bookings).
package fleetio
