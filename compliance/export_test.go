package compliance

// AddDecoded is Add with the event decoded by encoding/json, as for an
// event eventscan does not read.
func (a *Asserter) AddDecoded(idx uint64, raw []byte) error { return a.addDecoded(idx, raw) }
