// Package compliance will hold control catalogs (ISO 27001 Annex A and its
// peers) and the mappings from event types to controls: data plus small
// pure functions. It imports at most events.
package compliance
