package bridge

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// openStores loads the secrets and opens the cloud store, the box accounts
// and the integration's store on the engine Options.Store names: the bbolt
// files and secret files of the data directory, or one PostgreSQL
// database (pool, migrations, and the secrets in it).
func (s *Service) openStores(ctx context.Context) (err error) {
	o, dir := &s.o, s.o.DataDir
	co := cloud.Options{
		Path:     filepath.Join(dir, FileCloudDB),
		Signer:   s.signer,
		CodeKey:  o.Cloud.CodeKey,
		LogLimit: o.Cloud.LogLimit,
		// Replicas: each box message to one of them (Options.Broker).
		ShareGroup: o.Broker.ShareGroup,
		Logger:     s.log.With("component", "cloud"),
	}
	if o.Store.URL == "" {
		if s.signer, s.keyCreated, err = loadOrCreateSigningKey(filepath.Join(dir, FileSigningKey)); err != nil {
			return err
		}
		if s.ca, s.caCreated, err = loadOrCreateCA(dir); err != nil {
			return err
		}
		if s.token, err = loadOrCreateToken(filepath.Join(dir, FileAdminToken)); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		co.Signer = s.signer
		if s.cloud, err = cloud.Open(co); err != nil {
			return fmt.Errorf("cloud store: %w", err)
		}
		if s.accounts, err = openBoxAccounts(filepath.Join(dir, FileBoxesDB)); err != nil {
			return err
		}
		if s.bookingsStore, err = bookings.OpenStore(filepath.Join(dir, FileBookingsDB)); err != nil {
			return fmt.Errorf("bookings store: %w", err)
		}
		return nil
	}

	if s.pool, err = pgdb.Open(ctx, o.Store.URL, pgdb.Options{MaxConns: o.Store.MaxConns, Logger: s.log}); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.log.Info("store: postgres", "url", pgdb.Redact(o.Store.URL))
	if err := pgdb.Migrate(ctx, s.pool, "bridge", migrations(), s.log); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sec, err := loadSecretsPG(ctx, s.pool, dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.signer, s.keyCreated, s.ca, s.caCreated, s.token = sec.signer, sec.keyCreated, sec.ca, sec.caCreated, sec.token
	co.Signer, co.Postgres = s.signer, s.pool
	if s.cloud, err = cloud.Open(co); err != nil {
		return fmt.Errorf("cloud store: %w", err)
	}
	s.accounts = newPGAccounts(s.pool)
	if s.bookingsStore, err = bookings.OpenPostgresStore(ctx, s.pool); err != nil {
		return fmt.Errorf("bookings store: %w", err)
	}
	return nil
}
