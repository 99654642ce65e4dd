// Package pgdb is the bridge's PostgreSQL connection and schema: a bounded
// connection pool from a postgres:// URL, the numbered SQL migrations of each
// store applied at start, and the retry of a transaction the database
// aborted for a conflict.
//
// Every store of the bridge (sync/cloud, sync/bookings, the box accounts of
// sync/bridge) has an engine on bbolt (one file, one process, the default)
// and one on PostgreSQL (any number of replicas on one database). Each store
// keeps its own migrations, embedded in its package as NNNNN_name.sql files
// (pressly/goose's format), and its own version table, so that one store's
// schema moves without touching another's. Migrate holds a PostgreSQL
// advisory lock while it applies them: replicas that start together apply
// each migration once, and the others wait.
//
// Bounds, set here: a pool holds at most Options.MaxConns connections
// (DefaultMaxConns); connecting gives up after ConnectTimeout; Migrate waits
// at most MigrateLockWait for another replica's migrations.
package pgdb
