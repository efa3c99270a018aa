// Package pimhook is the domain of the pimhook webhook system: the PIM posts
// what changed in its catalogue, pimhook works out which fields changed,
// decides which subscribers must hear about it, and delivers signed HTTP POSTs
// to each of them, in order and one at a time per app, with retries and a
// record of every attempt.
//
// This package holds the vocabulary (companies, apps, webhooks, entities,
// events, deliveries, attempts), the validation rules that belong to it, the
// error type every layer speaks, and the storage contract that the SQLite and
// PostgreSQL stores implement. It imports only the standard library;
// technologies live in subpackages: change (diffs), dispatch (fan-out, queues,
// workers, signing), sqlite (the embedded store), storetest (the conformance
// suite), http (the REST API) and cmd/pimhook (the binary).
package pimhook
