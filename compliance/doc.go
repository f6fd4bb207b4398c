// Package compliance holds the control catalogs (ISO/IEC 27001:2022 Annex
// A by number and short title, crosswalks to ISO/IEC 27001:2013, SOC 2 and
// NIST SP 800-53 with their provenance) and the evidence mapping from event
// types and ledger facts to each control, with the queries over the
// projection that produce a bundle's rows: versioned data, embedded in the
// binary, plus small pure functions. It imports at most events.
package compliance
