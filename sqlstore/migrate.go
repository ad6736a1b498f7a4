package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The migrations of each dialect, written with the default table prefix
// (DefaultTablePrefix), which is replaced for a store with another.
//
//go:embed migrations/postgres/*.sql migrations/mysql/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// migration is one SQL file of a dialect.
type migration struct {
	version int64
	name    string // e.g. "0001_init.sql"
	sql     string // with the store's prefix
}

// migrations returns d's migrations with the table prefix, by version.
func migrations(d Dialect, prefix string) ([]migration, error) {
	dir := "migrations/" + string(d)
	entries, err := migrationFiles.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: no migrations for dialect %q", string(d))
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 || path.Ext(e.Name()) != ".sql" {
			return nil, fmt.Errorf("sqlstore: migration file %s/%s is not named NNNN_name.sql", dir, e.Name())
		}
		b, err := migrationFiles.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: strings.ReplaceAll(string(b), DefaultTablePrefix, prefix)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	return ms, nil
}

// Migrations returns the SQL migrations of dialect d, for goose, atlas
// or any tool that applies SQL files in order: one file per schema
// version, named NNNN_name.sql, each a plain SQL script (statements end
// with a semicolon at the end of a line) that starts with goose's
// "-- +goose Up" annotation and has no down part. The tables have the
// default prefix, DefaultTablePrefix; [Store.Migrations] has a store's
// own. It returns nil if d is not a known Dialect.
//
// Copy them into a directory with os.CopyFS, or give the fs.FS to goose
// (goose.NewProvider(dialect, db, fsys)). [Store.Migrate] applies the
// same files and records them in its own table, schema_migrations: use
// one or the other.
func Migrations(d Dialect) fs.FS {
	fsys, err := migrationsFS(d, DefaultTablePrefix)
	if err != nil {
		return nil
	}
	return fsys
}

// Migrations returns the SQL migrations of the store's dialect, as
// [Migrations] does, with the store's table prefix.
func (s *Store) Migrations() fs.FS {
	fsys, err := migrationsFS(s.d.name(), s.prefix)
	if err != nil {
		return nil
	}
	return fsys
}

// PrefixedMigrations returns the SQL migrations of dialect d, as
// [Migrations] does, with the table prefix of a store made with
// Options.TablePrefix set to prefix ("" for the default), without a
// database: for a tool that prints or applies them itself.
func PrefixedMigrations(d Dialect, prefix string) (fs.FS, error) {
	prefix = cmp.Or(prefix, DefaultTablePrefix)
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return migrationsFS(d, prefix)
}

// checkPrefix refuses a table prefix Options.TablePrefix does not allow.
func checkPrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("sqlstore: table prefix %q: use at most 32 lowercase letters, digits and underscores, starting with a letter or an underscore", prefix)
	}
	return nil
}

func migrationsFS(d Dialect, prefix string) (fs.FS, error) {
	ms, err := migrations(d, prefix)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(ms))
	for _, m := range ms {
		files[m.name] = []byte(m.sql)
	}
	return memFS(files), nil
}

// Migrate creates or updates the store's tables: it applies, in order,
// the migrations of [Migrations] that its schema_migrations table does
// not record, and records them. Call it when the app starts: it is a
// no-op when the schema is up to date, and safe when several replicas
// start at once, here or in other processes. Each waits for the others
// behind a lock: PostgreSQL's pg_advisory_xact_lock, MySQL's GET_LOCK
// held by one dedicated connection, SQLite's write lock (the
// transaction is IMMEDIATE). A newer schema version than this package
// knows (from a newer release of it) is left alone.
//
// On PostgreSQL and SQLite all migrations run in one transaction, so a
// failure leaves nothing behind. MySQL commits each DDL statement on
// its own; every statement of the migrations is idempotent, so Migrate
// can simply be run again after a failure.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations(s.d.name(), s.prefix)
	if err != nil {
		return err
	}
	err = s.retry(ctx, func() error {
		return s.d.lockedMigrate(ctx, s.db, s.prefix, func(q querier) error { return s.migrate(ctx, q, ms) })
	})
	// Statements prepared before may read tables the migrations changed.
	s.forgetPrepared()
	if err != nil {
		return fmt.Errorf("sqlstore: migrate %s tables %s*: %w", s.d.name(), s.prefix, err)
	}
	return nil
}

// migrate applies the migrations not recorded yet. The caller holds the
// migration lock.
func (s *Store) migrate(ctx context.Context, q querier, ms []migration) error {
	table := s.prefix + tableMigrations
	if _, err := q.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+table+
		" (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)"); err != nil {
		return err
	}
	rows, err := q.QueryContext(ctx, "SELECT version FROM "+table)
	if err != nil {
		return err
	}
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return err
		}
		applied[v] = true
	}
	if err := closeRows(rows); err != nil {
		return err
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		for i, stmt := range splitStatements(m.sql) {
			if _, err := q.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migration %s, statement %d: %w", m.name, i+1, err)
			}
		}
		if _, err := q.ExecContext(ctx, s.d.bind("INSERT INTO "+table+" (version, applied_at) VALUES (?, ?)"),
			m.version, time.Now().Unix()); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	return nil
}

// splitStatements splits a migration into its statements: each ends
// with a semicolon at the end of a line. Lines that are only a comment
// are dropped.
func splitStatements(script string) []string {
	var (
		stmts []string
		cur   strings.Builder
	)
	for line := range strings.Lines(script) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// memFS is a read-only fs.FS of files in one directory.
type memFS map[string][]byte

var (
	_ fs.ReadDirFS  = memFS(nil)
	_ fs.ReadFileFS = memFS(nil)
)

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		entries, _ := m.ReadDir(".")
		return &memDir{entries: entries}, nil
	}
	b, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{info: memInfo{name: name, size: int64(len(b))}, r: bytes.NewReader(b)}, nil
}

func (m memFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	b, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		if _, ok := m[name]; ok {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	entries := make([]fs.DirEntry, 0, len(m))
	for n, b := range m {
		entries = append(entries, fs.FileInfoToDirEntry(memInfo{name: n, size: int64(len(b))}))
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, nil
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	info memInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

// Seek and ReadAt make the file an io.ReadSeeker, as embed's files are.
func (f *memFile) Seek(offset int64, whence int) (int64, error) { return f.r.Seek(offset, whence) }
func (f *memFile) ReadAt(p []byte, off int64) (int, error)      { return f.r.ReadAt(p, off) }

type memDir struct {
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: ".", dir: true}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}
func (d *memDir) Close() error { return nil }

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}
