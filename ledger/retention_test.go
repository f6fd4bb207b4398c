package ledger_test

import (
	"fmt"
	"time"

	"github.com/auditledger/auditledger/ledger"
)

// The retention records a writer seals when its configuration differs from
// what the log recorded: the default first, then tenants by name, a tenant
// no longer listed going back to the default.
func ExampleRetention_Changes() {
	recorded := ledger.Retention{Default: 365 * 24 * time.Hour, Tenants: map[string]time.Duration{
		"acme": 30 * 24 * time.Hour, "beta": 90 * 24 * time.Hour}}
	configured := ledger.Retention{Default: 365 * 24 * time.Hour, Tenants: map[string]time.Duration{
		"acme": 7 * 365 * 24 * time.Hour, "gamma": 36 * time.Hour}}
	for _, c := range configured.Changes(recorded, "ledger.tenant_retention") {
		fmt.Printf("%s: %s -> %s (%d -> %d)\n", c.Tenant, c.Old, c.New, c.OldSeconds, c.NewSeconds)
	}
	fmt.Println("acme's segments:", configured.For("acme"), "- anyone else's:", configured.For("delta"))
	// Output:
	// acme: 30d -> 2555d (2592000 -> 220752000)
	// beta: 90d -> default (7776000 -> 0)
	// gamma: default -> 36h0m0s (0 -> 129600)
	// acme's segments: 61320h0m0s - anyone else's: 8760h0m0s
}
