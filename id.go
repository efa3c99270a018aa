package pimhook

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// The state of NewID's monotonic sequence.
var (
	idMu               sync.Mutex
	idLastMS           uint64
	idLastHi, idLastLo uint64 // the 80 random bits of the last ID: 16 high, 64 low
)

// crockford is the Crockford base32 alphabet: sortable, no ambiguous letters.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns prefix + "_" + a 26-character ULID: 48 bits of milliseconds
// then 80 random bits. IDs of one prefix sort by creation time, which keeps
// index inserts local and makes them readable in logs. Within one process
// they are monotonic, as ULID's monotonic variant defines: an ID made in the
// same millisecond as the previous one (or with a clock that went back)
// takes the previous random bits plus one, so lists ordered by ID are in
// creation order.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	ms := uint64(max(now.UnixMilli(), 0))
	idMu.Lock()
	if ms <= idLastMS {
		ms = idLastMS
		idLastLo++
		if idLastLo == 0 {
			idLastHi = (idLastHi + 1) & 0xffff
		}
	} else {
		var r [10]byte
		if _, err := rand.Read(r[:]); err != nil {
			panic("pimhook: crypto/rand failed: " + err.Error())
		}
		// The top bit of the random part stays clear, so that incrementing
		// it within one millisecond cannot overflow into the time.
		idLastHi, idLastLo = uint64(binary.BigEndian.Uint16(r[:2]))&0x7fff, binary.BigEndian.Uint64(r[2:])
	}
	idLastMS = ms
	binary.BigEndian.PutUint64(b[:8], ms<<16|idLastHi)
	binary.BigEndian.PutUint64(b[8:], idLastLo)
	idMu.Unlock()
	// 128 bits -> 26 base32 characters, most significant first.
	var out [26]byte
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return prefix + "_" + string(out[:])
}

// ID prefixes.
const (
	PrefixCompany  = "co"
	PrefixAPIKey   = "key"
	PrefixApp      = "app"
	PrefixWebhook  = "wh"
	PrefixEvent    = "evt"
	PrefixDelivery = "msg"
	PrefixAttempt  = "atm"
	PrefixJobRun   = "run"
	PrefixBulkRun  = "brun"
	PrefixErrorLog = "err"
)

// Printable reports whether s is valid UTF-8 made only of printable
// characters: the rule for client-chosen identifiers (event IDs, job IDs,
// product keys) that travel in paths, headers and logs.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
