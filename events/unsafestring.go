package events

import "unsafe"

// unsafeString views b as a string without copying; b must not change
// while the string is in use (decodeFast copies what it keeps into an
// arena that is never written again where a string views it).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
