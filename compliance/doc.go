// Package compliance holds the control frameworks as data, one folder per
// framework under data/ (framework.yaml: id, title, version, publisher;
// catalog.yaml: control numbers and short titles; crosswalk.yaml: the
// controls mapped to ISO/IEC 27001:2022 with the mapping's source;
// evidence.yaml: what the ledger observes for each control and the queries
// over the projection that produce a bundle's rows; expectations.yaml: the
// expectation each control is tested against), embedded in the binary,
// plus small pure functions over it — among them Assert, which tests a
// bundle's events against the expectations (assert.go).
//
// The list of frameworks is the list of folders: adding one needs no Go
// change. Crosswalks run any-to-any through the ISO/IEC 27001:2022 Annex A
// controls (Hub), so each framework maps to the hub once and meets every
// other through it. The data is decoded strictly, and a fault is reported
// at its file and line. It imports at most events.
package compliance
