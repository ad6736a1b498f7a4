package memstore

import "time"

// SetNow sets the clock that stamps processed events and that PruneEvents
// measures their age by.
func SetNow(s *Store, now func() time.Time) { s.now = now }
