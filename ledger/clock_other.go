//go:build !linux

package ledger

import "errors"

func readClock() (ClockStatus, error) {
	return ClockStatus{}, errors.New("adjtimex(2) is Linux's: this system's clock state is not read")
}
