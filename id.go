package pimhook

import (
	"crypto/rand"
	"encoding/binary"
	"time"
	"unicode"
	"unicode/utf8"
)

// crockford is the Crockford base32 alphabet: sortable, no ambiguous letters.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns prefix + "_" + a 26-character ULID: 48 bits of milliseconds
// then 80 random bits. IDs of one prefix sort by creation time, which keeps
// index inserts local and makes them readable in logs.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("pimhook: crypto/rand failed: " + err.Error())
	}
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
