package compliance_test

import (
	"fmt"

	"github.com/auditledger/auditledger/compliance"
)

// An ISO/IEC 27001:2013 control followed to the SOC 2 criteria through the
// 2022 control they share.
func ExampleCorrespond() {
	cs, err := compliance.Correspond("iso27001-2013", "A.9.2.3", "soc2-2017")
	if err != nil {
		panic(err)
	}
	for _, c := range cs {
		fmt.Printf("%s %s: %s, through %s\n", c.Control.ID, c.Control.Title, c.Relationship, c.Via)
	}
	// Output:
	// CC6.3 Role-based access, least privilege and removal of access: intersects, through 8.2
}
