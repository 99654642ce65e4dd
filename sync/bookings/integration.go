package bookings

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// Contact methods of a Booking, a Reservation and a BookingEdit: how the
// driver is told, stored as notify's method names ("" is email when the
// driver has an address, else SMS).
const (
	ContactEmail = string(notify.MethodEmail)
	ContactSMS   = string(notify.MethodSMS)
)

// ValidContactMethod checks a contact method the admin chose (CreateBooking;
// the CLI checks with it before it asks): ContactEmail, ContactSMS or "".
func ValidContactMethod(m string) error {
	switch m {
	case "", ContactEmail, ContactSMS:
		return nil
	}
	return fmt.Errorf("%w contact method %q: want %q, %q or empty", ErrInvalid, m, ContactEmail, ContactSMS)
}

// Defaults for Options left zero.
const (
	// DefaultMaxBody bounds one webhook body. A delivery is one vehicle
	// assignment with its contact, vehicle and custom fields: about 1 KB
	// (Fleetio's documented shape, and what sync/fleetio/fleetiotest sends), a few
	// KB with an account's own custom fields. 64 KiB leaves tens of times
	// that, while 1 MiB (the old default) let each unauthenticated request
	// cost a megabyte.
	DefaultMaxBody = 64 << 10
	// DefaultMaxBodiesInFlight is how many webhook bodies are read at the
	// same time; one more is answered 503 with Retry-After, unread. It
	// bounds the memory that bodies take to DefaultMaxBodiesInFlight x
	// MaxBody (2 MiB by default) however many clients connect. Fleetio
	// sends a burst of deliveries over a few connections and each body is
	// read in milliseconds, so 32 is far above what it needs; a delivery
	// refused while slow clients hold every slot is retried by Fleetio, and
	// Reconcile repairs what Fleetio gives up on.
	DefaultMaxBodiesInFlight = 32
	// DefaultMaxBodiesPerAddress is how many of those one client address
	// (an IPv6 /64) may hold: a forger with a well-formed header gets a
	// body read, and without a share per address 32 slow ones held every
	// slot while Fleetio's deliveries got 503. Each of Fleetio's bodies is
	// read in milliseconds, so even a burst from one of its addresses
	// rarely has two in flight; a third waits for Fleetio's retry. Behind
	// a reverse proxy every client has the proxy's address: name it in
	// Options.TrustedProxies, or the share is the proxy's and one slow
	// client behind it refuses everyone.
	DefaultMaxBodiesPerAddress = 2
	// DefaultBodyTimeout bounds the reading of one webhook body, from the
	// end of its headers: a delivery of a few KB arrives in well under a
	// second, even over a bad link, and a client slower than this is
	// holding a body slot, not sending a delivery. It is what a slot costs
	// at most, far under the server's read timeout (sync/bridge,
	// 20 s for the whole request).
	DefaultBodyTimeout = 5 * time.Second
	// DefaultMinRetry and DefaultMaxRetry bound the back-off of a delivery
	// whose processing failed on something that may pass (Fleetio down or
	// rate limited, the cloud store busy): doubling from a few seconds to an
	// hour keeps a long outage cheap and a blip short.
	DefaultMinRetry = 5 * time.Second
	DefaultMaxRetry = time.Hour
	// DefaultMaxAttempts gives up on a delivery after this many failures
	// (about a day at the capped back-off), as Fleetio gives up its own.
	DefaultMaxAttempts = 30
	// DefaultWorkers is how many deliveries are processed at once. Each
	// waits mostly on Fleetio (a read-back, a PATCH, a contact lookup at
	// 100-300 ms each): eight in flight turn a burst of a thousand
	// assignments from minutes into well under one, while staying far from
	// Fleetio's per-account rate limit between two 429s (a 429 is retried by
	// the queue after its Retry-After).
	DefaultWorkers = 8
	// DefaultFleetioPerMinute and DefaultFleetioBurst are the bridge's own
	// budget of Fleetio requests (Options.FleetioPerMinute): Fleetio
	// publishes no figure for its per-account limit (an older page said
	// 20 a minute), so this is a guess that keeps a burst's read-backs
	// and write-backs from running into it, 5 a second; a 429's
	// Retry-After pauses the budget for every caller anyway. No booking
	// waits on it: PINs go live from the webhook's payload.
	DefaultFleetioPerMinute = 300
	DefaultFleetioBurst     = 30
	// DefaultClaimLease is how long a replica's claim on a delivery holds
	// (PostgreSQL) unless renewed: Run renews the claims of the deliveries
	// in progress every third of it, so a live replica keeps them however
	// long Fleetio takes, and a replica killed (no Drain) leaves them to
	// another within 30 s. Shorter would let a stall of the database or a
	// long GC pause of a few seconds pass a delivery to a second replica
	// while the first still works on it; longer holds a dead replica's
	// deliveries (grants not pushed) for longer.
	DefaultClaimLease = 30 * time.Second
)

// Options configure New.
type Options struct {
	Store *Store
	Cloud *cloud.Cloud
	// Notifier sends the messages to drivers and the admin
	// (*notify.Dispatcher in the service); nil: nobody is told.
	Notifier notify.Notifier
	// Admin receives Prompt reservations, overdue keys and box alerts, by
	// AdminMethod ("": email when Admin has an address, else SMS).
	Admin       notify.Recipient
	AdminMethod notify.Method
	// Zone shows the times in messages in that zone; nil keeps the text
	// the integration writes (the offset Fleetio sent, the account's).
	Zone *time.Location
	// AdminLink, when set, says where the admin makes the booking of a
	// Prompt reservation (given the assignment id); the templates have a
	// fallback without it.
	AdminLink func(assignmentID string) string
	// AccessBaseURL is the public URL the access page is served under, e.g.
	// "https://bridge.example.com": links are AccessBaseURL+"/access/"+token.
	AccessBaseURL string
	// NewClient makes the Fleetio client from the stored settings; default
	// fleetio.New with the settings' key, token and base URL.
	NewClient func(Settings) (*fleetio.Client, error)
	// MaxBody bounds one webhook body in bytes (default DefaultMaxBody).
	MaxBody int64
	// MaxBodiesInFlight bounds the webhook bodies being read at once
	// (default DefaultMaxBodiesInFlight).
	MaxBodiesInFlight int
	// MaxBodiesPerAddress bounds the bodies one client address (an IPv6
	// /64) may have being read at once (default DefaultMaxBodiesPerAddress;
	// at most MaxBodiesInFlight).
	MaxBodiesPerAddress int
	// TrustedProxies are the reverse proxies in front of the webhook: a
	// request from one of them is counted against the client its
	// X-Forwarded-For names (the right-most entry that is not a trusted
	// proxy), not against the proxy. Empty: X-Forwarded-For is ignored
	// (anyone can write it).
	TrustedProxies []netip.Prefix
	// BodyTimeout bounds how long one webhook body may take to arrive
	// (default DefaultBodyTimeout); a slower one is answered 408.
	BodyTimeout time.Duration
	MinRetry    time.Duration
	MaxRetry    time.Duration
	MaxAttempts int
	// FleetioPerMinute and FleetioBurst size the token bucket every Fleetio
	// request of the default client takes from (read-backs, write-backs,
	// contact lookups, Reconcile's lists); 0: DefaultFleetioPerMinute and
	// DefaultFleetioBurst; FleetioPerMinute < 0: no client-side budget
	// (only Fleetio's 429s pace the bridge). FleetioBudget, if set,
	// replaces the bucket (a budget shared by replicas). A custom
	// NewClient gets Budget() and sets fleetio.Options.Budget itself.
	FleetioPerMinute int
	FleetioBurst     int
	FleetioBudget    fleetio.Budget
	// Workers is how many deliveries are processed at the same time
	// (default DefaultWorkers; 1 processes them one by one). Two deliveries
	// of one assignment never run at once.
	Workers int
	// Replica names this process among the replicas on one PostgreSQL
	// database: the owner of its claims on the queue (default: host name,
	// process id and a random suffix). Each replica needs its own: a
	// replica's Run starts by releasing the claims its name holds (those
	// of its previous run, which died).
	Replica string
	// ClaimLease is how long a claim on a delivery holds without being
	// renewed (default DefaultClaimLease); see Store.ClaimDelivery.
	ClaimLease time.Duration
	// OverdueGrace is how long after a booking's end a key still out is
	// let be before CheckOverdue raises it: a driver a few minutes late
	// at the box is not told off. 0 raises it at the end.
	OverdueGrace time.Duration
	// ReturnSettle is how long a fob return's key sensor must have seen
	// the key seated (box.Event.SeatedMS) for the key to count as back
	// (default DefaultReturnSettle). A shorter one is attached to the
	// booking as unconfirmed, the key stays out and the admin is told.
	ReturnSettle time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
	Rand         io.Reader // PINs and tokens; default crypto/rand (any other is used under a lock)
	// LiveAlertBefore is how long before a booking's start CheckLive
	// raises not_live when the box has not applied its grant (default
	// DefaultLiveAlertBefore; < 0: no not_live alerts).
	LiveAlertBefore time.Duration
}

// Integration is the Fleetio integration: webhook receiver, queue worker and
// access pages.
type Integration struct {
	o   Options
	log *slog.Logger
	// wake wakes each lane of the queue (see lane).
	wake [lanes]chan struct{}

	// locks (locks.go) order the queue's workers against the operations
	// that act on many bookings at once: each worker holds the work lock
	// shared while it processes a delivery; Disconnect, CreateBooking,
	// SetDriverCode, ClearDriverCode, SetCodeMode and each Reconcile
	// repair hold it exclusively, so they never see a booking
	// half-processed and no worker starts while they run, on any replica.
	// A worker takes it once (never again while holding it: a waiting
	// exclusive would deadlock a nested shared). The driver locks
	// serialize, per Fleetio contact, the processing of deliveries whose
	// bookings use a driver code: drawing the driver's code once, its
	// grant once per box, the rewrite of the driver's other bookings when
	// it changes (see lockDrivers). Taken after the work lock, in
	// ascending contact order.
	locks locker
	// inflight is the keyed lock of the queue: the deliveries being
	// processed and their assignments, so that two deliveries of one
	// assignment never run at once, and in order (see workerPool).
	inflight inflight

	// Drain's: drainCh is closed when Drain starts; run is Run's, while
	// it runs.
	drainCh   chan struct{}
	drainOnce sync.Once
	run       struct {
		sync.Mutex
		lanes  chan struct{} // closed when the lanes have stopped
		done   chan struct{} // closed when Run returns
		cancel context.CancelFunc
	}

	stats counters

	// bodySlots counts the webhook bodies being read, in all and per
	// client address (Options.MaxBodiesInFlight, MaxBodiesPerAddress).
	bodySlots *bodySlots
	// alertWake wakes Run's alert loop when HandleEvents queued an admin
	// alert; the "alerts" lock keeps two SendAlerts (of any replica) from
	// sending one alert twice.
	alertWake chan struct{}

	mu         sync.Mutex
	client     *fleetio.Client
	clientFrom Settings
}

// New checks o and makes an Integration.
func New(o Options) (*Integration, error) {
	if o.Store == nil || o.Cloud == nil {
		return nil, errors.New("bridge: Store and Cloud are required")
	}
	if o.AccessBaseURL == "" {
		return nil, errors.New("bridge: AccessBaseURL is required (the access links sent to drivers)")
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FleetioBudget == nil && o.FleetioPerMinute >= 0 {
		o.FleetioBudget = fleetio.NewTokenBucket(cmpOrInt(o.FleetioPerMinute, DefaultFleetioPerMinute),
			cmpOrInt(o.FleetioBurst, DefaultFleetioBurst), nil)
	}
	if o.NewClient == nil {
		budget := o.FleetioBudget
		o.NewClient = func(s Settings) (*fleetio.Client, error) {
			return fleetio.New(fleetio.Options{BaseURL: s.BaseURL, APIKey: s.APIKey, AccountToken: s.AccountToken,
				HTTPClient: pooledClient(o.Workers), Budget: budget})
		}
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.ReturnSettle <= 0 {
		o.ReturnSettle = DefaultReturnSettle
	}
	if o.MaxBodiesInFlight <= 0 {
		o.MaxBodiesInFlight = DefaultMaxBodiesInFlight
	}
	if o.MaxBodiesPerAddress <= 0 {
		o.MaxBodiesPerAddress = DefaultMaxBodiesPerAddress
	}
	o.MaxBodiesPerAddress = min(o.MaxBodiesPerAddress, o.MaxBodiesInFlight)
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.MinRetry <= 0 {
		o.MinRetry = DefaultMinRetry
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = DefaultMaxRetry
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Rand != nil {
		// Workers draw PINs and tokens at the same time; a test's
		// deterministic reader need not be safe for that.
		o.Rand = &lockedReader{r: o.Rand}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Replica == "" {
		o.Replica = defaultReplica()
	}
	if o.ClaimLease <= 0 {
		o.ClaimLease = DefaultClaimLease
	}
	// Sessions: each worker of both lanes, plus the exclusive operations
	// and SendAlerts beside them.
	locks, err := newLocker(o.Store, 2*o.Workers+4)
	if err != nil {
		return nil, fmt.Errorf("bridge: locks: %w", err)
	}
	return &Integration{o: o, log: o.Logger.With("component", "fleetio-bridge"), locks: locks,
		wake:      [lanes]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		drainCh:   make(chan struct{}),
		bodySlots: newBodySlots(o.MaxBodiesInFlight, o.MaxBodiesPerAddress, o.TrustedProxies), alertWake: make(chan struct{}, 1)}, nil
}

// fleetio returns a client for the current settings, made again when they
// change (a reconnect with a new key).
func (b *Integration) fleetio() (*fleetio.Client, error) {
	st, err := b.o.Store.Settings()
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil && b.clientFrom == st {
		return b.client, nil
	}
	c, err := b.o.NewClient(st)
	if err != nil {
		return nil, fmt.Errorf("fleetio client: %w", err)
	}
	b.client, b.clientFrom = c, st
	return c, nil
}

// Budget is the budget the Fleetio requests take from (Options.FleetioBudget
// or the token bucket New made; nil: none).
func (b *Integration) Budget() fleetio.Budget { return b.o.FleetioBudget }

// Wake makes the workers look at the queue now.
func (b *Integration) Wake() {
	for l := range lanes {
		b.wakeLane(lane(l))
	}
}

func (b *Integration) wakeLane(l lane) {
	select {
	case b.wake[l] <- struct{}{}:
	default:
	}
}

func cmpOrInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// defaultReplica is a name no other process has: host, process id and a
// random suffix (a restarted process on the same host may reuse the pid).
func defaultReplica() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", cmpOr(host, "bridge"), os.Getpid(), rand.Text()[:6])
}

// exclusive takes the work lock exclusively (see Integration.locks).
func (b *Integration) exclusive(ctx context.Context) (context.Context, func(), error) {
	ctx, unlock, err := b.locks.work(ctx, true)
	if err != nil {
		return ctx, nil, fmt.Errorf("wait for the deliveries in progress: %w", err)
	}
	return ctx, unlock, nil
}
