package bus

import (
	"fmt"
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events"
)

// Role is a kind of bus client with its own credentials. Each may do only
// its own work; nothing but Admin may delete or purge anything.
type Role string

// The bus roles.
const (
	// Admin is for operators: everything, including deletes and purges.
	// No auditledger process uses it.
	Admin Role = "admin"
	// Ledger is the writer: it consumes AUDIT_EVENTS, publishes sealed
	// records and rejections, and holds the lease.
	Ledger Role = "ledger"
	// API decides approvals and records its own events.
	API Role = "api"
	// Proxy is every producer (the proxies, auditledger emit, the emitter
	// library): it publishes events and opens and awaits approvals.
	Proxy Role = "proxy"
	// Reader follows sealed records: projectors, forwarders, SIEM
	// consumers, `nats sub`.
	Reader Role = "reader"
)

// Roles lists every fixed role; Producer makes one role per producer.
var Roles = []Role{Admin, Ledger, API, Proxy, Reader}

// producerPrefix begins the name of every per-producer role.
const producerPrefix = "producer-"

// Producer is the role of one producer instance: the Proxy role's work,
// but publishing events only on subjects that end in its own token
// (events.Subject), so the writer knows which credentials published an
// event and refuses one that claims another producer. Proxy and API may
// publish for any producer: give them to trusted importers only, and each
// gateway its own Producer role.
func Producer(instance string) Role { return Role(producerPrefix + events.ProducerToken(instance)) }

// IsProducer reports whether r is a per-producer role, and whose.
func (r Role) IsProducer() (token string, ok bool) {
	return strings.CutPrefix(string(r), producerPrefix)
}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if _, ok := r.IsProducer(); ok && len(s) > len(producerPrefix) {
		return r, nil
	}
	if !slices.Contains(Roles, r) {
		var names []string
		for _, r := range Roles {
			names = append(names, string(r))
		}
		return "", fmt.Errorf("bus role %q unknown (want one of %s)", s, strings.Join(names, ", "))
	}
	return r, nil
}

// InboxPrefix is the reply-subject prefix a role's connections use
// (nats.CustomInboxPrefix). Each role may subscribe only below its own, so
// no role reads the replies another role's requests get.
func (r Role) InboxPrefix() string {
	if r == Admin {
		return "_INBOX"
	}
	return "_INBOX_" + string(r)
}

// Permissions are the subjects a role may publish and subscribe to, in
// NATS subject syntax.
type Permissions struct {
	PublishAllow, PublishDeny     []string
	SubscribeAllow, SubscribeDeny []string
}

// Edits that only Admin may make, denied explicitly to every other role
// so that a wildcard added to an allow list later cannot grant them.
var editDeny = []string{
	"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
	"$JS.API.STREAM.SNAPSHOT.>", "$JS.API.STREAM.RESTORE.>", "$JS.API.ACCOUNT.>",
	"$JS.API.STREAM.PEER.>", "$JS.API.STREAM.LEADER.>", "$JS.API.META.>", "$JS.API.SERVER.>",
}

// common is what every role may ask: JetStream's account information
// (limits and usage; the key-value client asks it before creating a
// bucket) and the names of the streams (the nats CLI looks a stream up by
// subject).
var common = []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES"}

// streamInfo allows looking up stream s.
func streamInfo(s string) string { return "$JS.API.STREAM.INFO." + s }

// getMsg allows reading single messages of stream s, directly or not.
func getMsg(s string) []string {
	return []string{"$JS.API.STREAM.MSG.GET." + s, "$JS.API.DIRECT.GET." + s, "$JS.API.DIRECT.GET." + s + ".>"}
}

// manage allows creating and updating stream s.
func manage(s string) []string {
	return []string{"$JS.API.STREAM.CREATE." + s, "$JS.API.STREAM.UPDATE." + s, streamInfo(s)}
}

// consume allows creating, reading and removing consumers of stream s
// and acknowledging its messages.
func consume(s string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>", "$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
		"$JS.API.CONSUMER.RESET." + s + ".>", // a forwarder starting takes back what a killed one held
		"$JS.API.CONSUMER.NAMES." + s, "$JS.API.CONSUMER.LIST." + s,
		"$JS.ACK." + s + ".>", "$JS.FC." + s + ".>",
	}
}

// kv allows reading and writing the keys of bucket b, watching it, and
// looking it up.
func kv(b string) []string {
	s := "KV_" + b
	return slices.Concat([]string{"$KV." + b + ".>", streamInfo(s)}, getMsg(s), consume(s))
}

// Permissions returns what r may do on the bus.
func (r Role) Permissions() Permissions {
	inbox := []string{r.InboxPrefix() + ".>"}
	switch r {
	case Admin:
		return Permissions{PublishAllow: []string{">"}, SubscribeAllow: []string{">"}}
	case Ledger:
		return Permissions{
			PublishAllow: slices.Concat(common,
				[]string{LedgerSubjects, LiveSubjects, RejectSubject},
				manage(EventsStream), manage(LedgerStream), manage(RejectStream),
				consume(EventsStream), getMsg(EventsStream), getMsg(LedgerStream),
				manage("KV_"+LeaseBucket), kv(LeaseBucket),
			),
			PublishDeny:    editDeny,
			SubscribeAllow: inbox,
		}
	case API:
		return Permissions{
			PublishAllow:   slices.Concat(common, []string{EventsSubjects, events.BatchSubjects, streamInfo(EventsStream)}, manage("KV_"+ApprovalsBucket), kv(ApprovalsBucket)),
			PublishDeny:    editDeny,
			SubscribeAllow: inbox,
		}
	case Proxy:
		return Permissions{
			PublishAllow:   slices.Concat(common, []string{EventsSubjects, events.BatchSubjects, streamInfo(EventsStream)}, kv(ApprovalsBucket)),
			PublishDeny:    editDeny,
			SubscribeAllow: inbox,
		}
	case Reader:
		return Permissions{
			PublishAllow:   slices.Concat(common, []string{streamInfo(LedgerStream)}, getMsg(LedgerStream), consume(LedgerStream)),
			PublishDeny:    editDeny,
			SubscribeAllow: slices.Concat(inbox, []string{LedgerSubjects, LiveSubjects}),
		}
	}
	token, ok := r.IsProducer()
	if !ok {
		return Permissions{}
	}
	// tenant, then the two tokens of a producer's event type (ledger.*
	// types, with three, are the writer's own), then its own token.
	return Permissions{
		PublishAllow:   slices.Concat(common, []string{"audit.events.*.*.*." + token, "audit.batch." + token, streamInfo(EventsStream)}, kv(ApprovalsBucket)),
		PublishDeny:    editDeny,
		SubscribeAllow: inbox,
	}
}
