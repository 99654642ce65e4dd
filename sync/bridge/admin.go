package bridge

import (
	"cmp"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/cloud"
)

// The admin API: JSON over HTTP on loopback, every request with
// "Authorization: Bearer <data_dir/admin.token>". The CLI subcommands are its
// clients; the later admin HTTP API grows from it. Request bodies that carry
// a code or a password are never logged, and no response carries one.

// maxAdminBody bounds a request body: the biggest legitimate one is a grant.
const maxAdminBody = 1 << 20

// Source marks grants made through the admin API (box.Grant.Source).
const adminSource = "admin"

// MaxSlots bounds register-box --slots: the largest Keycafe cabinet has a
// few hundred; a bigger number is a typo.
const MaxSlots = 1000

// DefaultCommandTTL is how long a command made without a ttl stays good: long
// enough for a box on a flaky link to get it, short enough that a captured
// release is soon worthless.
const DefaultCommandTTL = 10 * time.Minute

func (s *Service) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/signing-key", s.getSigningKey)
	mux.HandleFunc("GET /v1/boxes", s.listBoxes)
	mux.HandleFunc("POST /v1/boxes", s.registerBox)
	mux.HandleFunc("GET /v1/boxes/{box}/records", s.getRecords)
	mux.HandleFunc("PUT /v1/boxes/{box}/keys/{key}", s.putKey)
	mux.HandleFunc("DELETE /v1/boxes/{box}/keys/{key}", s.deleteKey)
	mux.HandleFunc("PUT /v1/boxes/{box}/grants/{grant}", s.putGrant)
	mux.HandleFunc("DELETE /v1/boxes/{box}/grants/{grant}", s.deleteGrant)
	mux.HandleFunc("POST /v1/boxes/{box}/grants/{grant}/revoke", s.revokeGrant)
	mux.HandleFunc("GET /v1/boxes/{box}/events", s.getEvents)
	mux.HandleFunc("POST /v1/boxes/{box}/commands", s.postCommand)
	mux.HandleFunc("GET /v1/boxes/{box}/commands/{id}", s.getCommand)
	s.fleetioRoutes(mux)
	s.provisionRoutes(mux)

	// /metrics and /healthz go without the token: the admin listener is on
	// loopback, and a Prometheus scraper should not hold a key that can put
	// grants on boxes. Neither says anything secret.
	top := http.NewServeMux()
	top.Handle("GET /metrics", s.metricsHandler())
	top.HandleFunc("GET /healthz", s.healthz)
	top.Handle("/", s.authorize(mux))
	return top
}

// authorize checks the bearer token (in constant time) and logs each
// request by method, path and status: never a body.
func (s *Service) authorize(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			s.log.Warn("admin: request without a valid token", "security", true, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="smartbox-bridge"`)
			writeJSON(w, http.StatusUnauthorized, adminapi.ErrorResponse{Error: "missing or wrong bearer token (data_dir/admin.token)"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.Info("admin", "method", r.Method, "path", r.URL.Path, "status", rec.status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers with the error's message and a status from its kind. Errors
// of sync/cloud never carry a code, and neither do ours.
func fail(w http.ResponseWriter, status int, err error) {
	switch {
	case errors.Is(err, cloud.ErrUnknownBox), errors.Is(err, cloud.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, box.ErrCodeInUse):
		status = http.StatusConflict
	}
	writeJSON(w, status, adminapi.ErrorResponse{Error: err.Error()})
}

// decode reads a JSON body strictly: an unknown field is a typo that would
// otherwise be silently ignored (a "max_use" that never limits anything).
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("request body over %d bytes", maxAdminBody)
		}
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: more than one JSON value")
	}
	return nil
}

func (s *Service) getSigningKey(w http.ResponseWriter, _ *http.Request) {
	line := PublicKeyLine(s.signer)
	_, pub, _ := strings.Cut(line, "=")
	writeJSON(w, http.StatusOK, adminapi.SigningKeyResponse{KeyID: s.signer.KeyID, PublicKey: pub, Line: line})
}

func (s *Service) registerBox(w http.ResponseWriter, r *http.Request) {
	var req adminapi.RegisterBoxRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if !box.ValidID(req.ID) {
		fail(w, http.StatusBadRequest, fmt.Errorf("box id %q: want 1-128 letters, digits or ._:@-", req.ID))
		return
	}
	if req.ID == s.o.Broker.Username {
		fail(w, http.StatusBadRequest, fmt.Errorf("box id %q is the cloud's broker user name", req.ID))
		return
	}
	pub, err := decodeBase64(req.PublicKey)
	if err != nil || len(pub) != 32 {
		fail(w, http.StatusBadRequest, fmt.Errorf("box %s: public_key: want the box's 32-byte X25519 key in base64 (smartboxctl identity)", req.ID))
		return
	}
	if req.Password != "" && len(req.Password) > 72 {
		// bcrypt uses only the first 72 bytes: refuse rather than
		// silently accept a longer password that is partly ignored.
		fail(w, http.StatusBadRequest, fmt.Errorf("box %s: password over 72 bytes", req.ID))
		return
	}
	if req.Slots < 0 || req.Slots > MaxSlots {
		fail(w, http.StatusBadRequest, fmt.Errorf("box %s: slots %d: want 1..%d", req.ID, req.Slots, MaxSlots))
		return
	}
	register := s.cloud.RegisterBoxOnce
	if req.Replace {
		register = s.cloud.RegisterBox
	}
	if err := register(req.ID, pub); err != nil {
		if errors.Is(err, cloud.ErrOtherKey) {
			fail(w, http.StatusConflict, fmt.Errorf("box %s is already registered with another key: is the box id right? "+
				"Replacing it cuts the box that has the old key off (smartboxctl provision --force, smartbox-bridge register-box --replace)", req.ID))
			return
		}
		fail(w, http.StatusBadRequest, fmt.Errorf("register box %s: %w", req.ID, err))
		return
	}
	if req.Password != "" {
		if err := s.accounts.SetPassword(req.ID, req.Password); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
	}
	if req.Slots > 0 {
		if err := s.accounts.SetSlots(req.ID, req.Slots); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
	}
	bi, err := s.bookingsStore.Box(req.ID)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	if req.Name != "" || req.Location != "" {
		// The access page and the drivers' messages say where the box is.
		bi.ID, bi.Name, bi.Location = req.ID, cmp.Or(req.Name, bi.Name), cmp.Or(req.Location, bi.Location)
		if err := s.bookingsStore.PutBox(bi); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
	}
	s.log.Info("box registered", "box", req.ID, "password_set", req.Password != "", "slots", req.Slots, "location", bi.Location)
	info := adminapi.BoxInfo{ID: req.ID, HasPassword: s.accounts.HasPassword(req.ID), ExternalBroker: s.broker == nil,
		Slots: s.accounts.Slots(req.ID), Name: bi.Name, Location: bi.Location}
	if c, ok := s.accounts.Cert(req.ID); ok {
		info.CertNotAfter, info.CertSerial = c.NotAfter, c.Serial
	}
	writeJSON(w, http.StatusOK, info)
}

// decodeBase64 takes standard or URL-safe base64, padded or not: people paste
// keys from many tools.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

func (s *Service) listBoxes(w http.ResponseWriter, _ *http.Request) {
	ids, err := s.cloud.Boxes()
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	out := make([]adminapi.BoxInfo, 0, len(ids))
	for _, id := range ids {
		info := adminapi.BoxInfo{ID: id, HasPassword: s.accounts.HasPassword(id), Slots: s.accounts.Slots(id)}
		if c, ok := s.accounts.Cert(id); ok {
			info.CertNotAfter, info.CertSerial = c.NotAfter, c.Serial
		}
		if bi, err := s.bookingsStore.Box(id); err == nil {
			info.Name, info.Location = bi.Name, bi.Location
		}
		if info.Revision, err = s.cloud.Revision(id); err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		st, ok, err := s.cloud.Status(id)
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		if ok {
			info.Status = &st
		}
		out = append(out, info)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) getRecords(w http.ResponseWriter, r *http.Request) {
	keys, grants, err := s.cloud.Records(r.PathValue("box"))
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	if keys == nil {
		keys = []box.Key{}
	}
	if grants == nil {
		grants = []box.Grant{}
	}
	writeJSON(w, http.StatusOK, RecordsResponse{Keys: keys, Grants: grants})
}

func (s *Service) putKey(w http.ResponseWriter, r *http.Request) {
	var req PutKeyRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	k := box.Key{ID: r.PathValue("key"), Name: req.Name, FobUID: req.FobUID, Slot: req.Slot}
	if n := s.accounts.Slots(r.PathValue("box")); n > 0 && (k.Slot < 1 || k.Slot > n) {
		fail(w, http.StatusBadRequest, fmt.Errorf("key %s: home slot %d: box %s has slots 1..%d", k.ID, k.Slot, r.PathValue("box"), n))
		return
	}
	if uid, ok := box.NormalizeFobUID(k.FobUID); ok {
		k.FobUID = uid
	}
	s.revision(w, func() (uint64, error) { return s.cloud.PutKey(r.PathValue("box"), k) })
}

func (s *Service) deleteKey(w http.ResponseWriter, r *http.Request) {
	s.revision(w, func() (uint64, error) { return s.cloud.DeleteKey(r.PathValue("box"), r.PathValue("key")) })
}

func (s *Service) putGrant(w http.ResponseWriter, r *http.Request) {
	var req PutGrantRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	g := box.Grant{ID: r.PathValue("grant"), Kind: req.Kind, KeyIDs: req.KeyIDs, From: req.From, Until: req.Until,
		MaxUses: req.MaxUses, DriverRef: req.DriverRef, Source: adminSource}
	s.revision(w, func() (uint64, error) { return s.cloud.PutGrant(r.PathValue("box"), g, req.Code) })
}

func (s *Service) deleteGrant(w http.ResponseWriter, r *http.Request) {
	s.revision(w, func() (uint64, error) { return s.cloud.DeleteGrant(r.PathValue("box"), r.PathValue("grant")) })
}

func (s *Service) revokeGrant(w http.ResponseWriter, r *http.Request) {
	s.revision(w, func() (uint64, error) { return s.cloud.RevokeGrant(r.PathValue("box"), r.PathValue("grant")) })
}

// revision runs a change and answers with the box's new revision. A change
// the cloud refuses is the caller's input (400), unless it names a missing
// box or record (404) or a code in use (409).
func (s *Service) revision(w http.ResponseWriter, change func() (uint64, error)) {
	rev, err := change()
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, RevisionResponse{Revision: rev})
}

func (s *Service) getEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := queryUint(q.Get("after"))
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("after: %w", err))
		return
	}
	limit, err := queryUint(q.Get("limit"))
	if err != nil || limit > 100_000 {
		fail(w, http.StatusBadRequest, fmt.Errorf("limit: want 0..100000"))
		return
	}
	evs, err := s.cloud.Events(r.PathValue("box"), after, int(limit))
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	if evs == nil {
		evs = []box.Event{}
	}
	writeJSON(w, http.StatusOK, evs)
}

func queryUint(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func (s *Service) postCommand(w http.ResponseWriter, r *http.Request) {
	var req CommandRequest
	if err := decode(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	ttl := DefaultCommandTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("ttl %q: not a duration", req.TTL))
			return
		}
		ttl = d
	}
	boxID := r.PathValue("box")
	_, cmd, err := s.cloud.Command(boxID, req.Kind, req.Slot, req.By, req.Reason, ttl)
	if err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	s.log.Info("command sent", "box", boxID, "id", cmd.ID, "kind", cmd.Kind, "slot", cmd.Slot, "by", cmd.By, "reason", cmd.Reason)
	writeJSON(w, http.StatusOK, CommandResponse{ID: cmd.ID, Expires: cmd.Expires})
}

func (s *Service) getCommand(w http.ResponseWriter, r *http.Request) {
	res, ok, err := s.cloud.CommandResult(r.PathValue("box"), r.PathValue("id"))
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	out := CommandResultResponse{Answered: ok}
	if ok {
		out.Result = &res
	}
	writeJSON(w, http.StatusOK, out)
}

// AdminClient is a client of this service's admin API.
func (s *Service) AdminClient() *adminapi.AdminClient {
	return adminapi.NewAdminClient(s.AdminURL(), s.AdminToken())
}
