package bridge

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The secrets a bridge on PostgreSQL keeps in bridge_secrets, so that every
// replica signs with one key, issues certificates from one CA and takes
// one admin token.
const (
	secretSigningKey = "signing_key" // Ed25519, PKCS#8 PEM
	secretCA         = "ca"          // the CA's key PEM, then its certificate PEM
	secretAdminToken = "admin_token" // hex
)

// secrets are what Start loads before it opens anything else.
type secrets struct {
	signer     wire.Signer
	keyCreated bool
	ca         *certAuthority
	caCreated  bool
	token      string
}

// loadSecretsPG reads the service's secrets from the database, making each
// one on the first start of the first replica. A data directory that holds
// a depot's signing key while the database holds none is refused: that
// depot's boxes trust its key, and a new one would cut every one of them
// off; `smartbox-bridge migrate` moves the depot into the database.
func loadSecretsPG(ctx context.Context, pool *pgxpool.Pool, dir string) (s secrets, err error) {
	var moving bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bridge_secrets WHERE name = $1)`, secretMoving).Scan(&moving); err != nil {
		return s, fmt.Errorf("secrets: %w", err)
	}
	if moving {
		return s, errors.New("secrets: `smartbox-bridge migrate` is moving a depot into this database, or failed to: " +
			"wait for it, or drop the database, make an empty one and run the move again")
	}
	var have bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bridge_secrets WHERE name = $1)`, secretSigningKey).Scan(&have); err != nil {
		return s, fmt.Errorf("secrets: %w", err)
	}
	if !have {
		if _, err := os.Stat(filepath.Join(dir, FileSigningKey)); err == nil {
			return s, fmt.Errorf("secrets: %s holds a signing key and the database none: "+
				"run `smartbox-bridge migrate` to move this depot into the database (its boxes trust that key), "+
				"or move the file away to start a new installation", filepath.Join(dir, FileSigningKey))
		}
	}
	keyPEM, created, err := pgSecret(ctx, pool, secretSigningKey, func() ([]byte, error) {
		b, _, err := newSigningKey()
		return b, err
	})
	if err != nil {
		return s, fmt.Errorf("signing key: %w", err)
	}
	if s.signer, err = ParseSigningKey(keyPEM); err != nil {
		return s, fmt.Errorf("signing key in the database: %w", err)
	}
	s.keyCreated = created

	caPEM, created, err := pgSecret(ctx, pool, secretCA, func() ([]byte, error) {
		ca, err := newCA()
		if err != nil {
			return nil, err
		}
		k, err := ca.keyPEM()
		return append(k, ca.certPEM...), err
	})
	if err != nil {
		return s, fmt.Errorf("bridge CA: %w", err)
	}
	kb, rest := pem.Decode(caPEM)
	if kb == nil {
		return s, errors.New("bridge CA in the database: not PEM")
	}
	if s.ca, err = parseCA(pem.EncodeToMemory(kb), rest); err != nil {
		return s, fmt.Errorf("bridge CA in the database: %w", err)
	}
	s.caCreated = created

	tok, _, err := pgSecret(ctx, pool, secretAdminToken, func() ([]byte, error) {
		t, err := newToken()
		return []byte(t), err
	})
	if err != nil {
		return s, fmt.Errorf("admin token: %w", err)
	}
	if len(tok) < 32 {
		return s, fmt.Errorf("admin token in the database: %d characters, want at least 32", len(tok))
	}
	s.token = string(tok)
	// The CLI on this machine finds the token where it always has.
	if err := writeSecret(filepath.Join(dir, FileAdminToken), append(tok, '\n')); err != nil {
		return s, fmt.Errorf("write admin token: %w", err)
	}
	return s, nil
}

// pgSecret returns the secret called name, making it with mk when no
// replica has: the first insert wins, and a replica that lost the race
// reads the winner's. created says whether this call made it.
func pgSecret(ctx context.Context, pool *pgxpool.Pool, name string, mk func() ([]byte, error)) (v []byte, created bool, err error) {
	read := func() error {
		return pool.QueryRow(ctx, `SELECT value FROM bridge_secrets WHERE name = $1`, name).Scan(&v)
	}
	if err := read(); err == nil {
		return v, false, nil
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	nv, err := mk()
	if err != nil {
		return nil, false, err
	}
	tag, err := pool.Exec(ctx, `INSERT INTO bridge_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, nv)
	if err != nil {
		return nil, false, err
	}
	if tag.RowsAffected() == 1 {
		return nv, true, nil
	}
	if err := read(); err != nil {
		return nil, false, err
	}
	return v, false, nil
}
