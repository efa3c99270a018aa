// Package filter evaluates webhooks' filters and reducers on event
// payloads: RFC 9535 JSONPath queries, JavaScript conditions and reducers
// that reshape a payload.
//
// An Engine compiles a pimhook.Filter into a Filter and a reducer into a
// Reducer; both are cached by content. Parse reads a payload once into a
// Document that any number of filters and reducers may evaluate at the
// same time. Conditions run in frozen goja realms under a time, memory and
// call-stack budget. The rules, with examples, are in docs/filters.md.
package filter
