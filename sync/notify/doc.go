// Package notify tells people about bookings: a driver gets the PIN and the
// access instructions when a Fleetio assignment becomes a booking, hears
// when it changes, is cancelled or the key is overdue; an account admin is
// prompted when a vehicle set to Prompt is assigned (Keycafe's notification
// methods, Automatic and Prompt), and alerted when a box reports wrong codes
// past its alert threshold (keypad_attack), wrong codes that spent its
// keypad's guess budget, so that no code opens it until a stated time or a
// restore-keypad command (keypad_closed), or a fob return the slot's key
// sensor did not confirm (return_unconfirmed).
//
// # Messages
//
// A Message names a Recipient, a Kind and data (box, location, key,
// vehicle, window start and end with a time zone, PIN, access link,
// instructions). Dispatcher implements Notifier: it renders the message with
// the template for its kind and method and sends it by email (Mailer, SMTP)
// or SMS (SMSClient, an HTTP gateway with Twilio's Messages API shape). The
// method is the one chosen for the booking, or follows from the contact
// details (email when there is an address).
//
// # Templates
//
// text/template files, one per kind and method, named
// "<kind>.<method>.tmpl". Defaults are built in (templates/); a deployer
// overrides any of them from a directory. An email template's first line is
// "Subject: ...". Every template is parsed and rendered against sample data
// when loaded, so a broken one stops the bridge at start-up rather than when
// a driver waits for a PIN. Data keys read as {{.pin}} are required (missing
// is an error at send time); optional ones are read with
// {{with index . "access_link"}}. The helper "when" formats a time in the
// booking's zone: {{when .start .time_zone}}.
//
// # Email
//
// One SMTP submission per message: EHLO, STARTTLS (required by default,
// opportunistic, or none for a loopback relay), AUTH PLAIN when credentials
// are set (net/smtp refuses PLAIN in clear to anything but localhost), then
// a UTF-8 text/plain, quoted-printable message with From, To, Subject (RFC
// 2047), Date, Message-ID. net/smtp has no context: a connection deadline
// (the context's or EmailConfig.Timeout) bounds the whole exchange and
// cancellation moves it into the past. A STARTTLS handshake that fails
// (an untrusted certificate) is an error in every mode, never a quiet
// fall-back to plain text. A mail is not retried here: the
// caller's durable queue decides, since a retry after a lost 250 duplicates.
//
// # SMS
//
// POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, form fields
// To, From or MessagingServiceSid, Body, HTTP basic auth AccountSid:
// AuthToken. 201 answers {sid, status}; errors are JSON {code, message,
// more_info, status}, returned as *SMSError. 429 (Retry-After honoured) and
// 5xx are retried with capped exponential back-off and full jitter.
// Package twiliotest is a local fake of that API for tests and the demo.
//
// # Secrets
//
// A PIN or an access link opens a key locker. Message.LogValue logs the
// kind, the method and masked addresses only; errors carry SMTP replies and
// gateway error fields, never a message body.
package notify
