package bus

import (
	"fmt"
	"slices"
	"strings"
)

// Principal is who a bus client is: one set of credentials, one set of
// permissions (principals.go). Each may do only
// its own work; nothing but Admin may delete or purge anything.
type Principal string

// The fixed principals.
const (
	// Admin is for operators: everything, including deletes and purges.
	// No auditledger process uses it.
	Admin Principal = "admin"
	// Ledger is the writer: it consumes AUDIT_EVENTS, publishes sealed
	// records and rejections, and holds the lease.
	Ledger Principal = "ledger"
	// API decides approvals and records its own events.
	API Principal = "api"
	// Proxy is every producer (the proxies, auditledger emit, the emitter
	// library): it publishes events and opens and awaits approvals.
	Proxy Principal = "proxy"
	// Reader follows sealed records: `auditledger tail`, SIEM
	// consumers, `nats sub`. It has no rights on any forwarder's consumer.
	Reader Principal = "reader"
)

// Principals lists every fixed principal; Producer makes one per producer,
// Forwarder one per SIEM forwarder.
var Principals = []Principal{Admin, Ledger, API, Proxy, Reader}

// producerPrefix begins the name of every per-producer role.
const producerPrefix = "producer-"

// Producer is the role of one producer instance: the Proxy role's work,
// but publishing events only on subjects that end in its own token
// (Subject), so the writer knows which credentials published an
// event and refuses one that claims another producer. Proxy and API may
// publish for any producer: give them to trusted importers only, and each
// gateway its own Producer role.
func Producer(instance string) Principal { return Principal(producerPrefix + ProducerToken(instance)) }

// IsProducer reports whether r is a per-producer role, and whose.
func (r Principal) IsProducer() (token string, ok bool) {
	return strings.CutPrefix(string(r), producerPrefix)
}

// forwarderPrefix begins the name of every per-forwarder role.
const forwarderPrefix = "forwarder-"

// Forwarders are the forwarders serve runs (syslog-forwarder,
// hec-forwarder, webhook-forwarder, and the alerter, which follows
// AUDIT_LEDGER the same way): nkeyauth.Generate makes a Forwarder
// role for each in every keys directory, and the reader is denied their
// consumers whatever else is configured.
var Forwarders = []string{"syslog", "hec", "webhook", "alerter"}

// Forwarder is the role of one forwarder: it reads AUDIT_LEDGER only
// through its own durable consumer, ForwarderDurable(name) — creating,
// reading, pulling from and acknowledging it — and has no rights on any
// other consumer. No other role but Admin may change, pull from or
// acknowledge that consumer, so no other credential can delete or
// recreate it (records sealed in between would never reach the
// destination) or take its messages; the API may only read its state
// (processStates), for the console's health page.
func Forwarder(name string) Principal { return Principal(forwarderPrefix + ProducerToken(name)) }

// ForwarderDurable is the name of forwarder name's durable consumer on
// AUDIT_LEDGER.
func ForwarderDurable(name string) string { return ForwarderDurablePrefix + ProducerToken(name) }

// ForwarderDurablePrefix starts the name of every forwarder's durable
// consumer.
const ForwarderDurablePrefix = "forward-"

// processStates is what the API reads of the other processes: the
// writers' leases (their keys and last renewals) and the state of the
// consumers of AUDIT_LEDGER (lag, last acknowledgement, whether a pull
// waits) — reading only: it cannot renew a lease or touch a consumer.
//
// It also reads the gateways' heartbeats (HeartbeatBucket) and the
// newest message of AUDIT_LEDGER, whose headers (HeaderIndex,
// HeaderCount) give the log's size to measure the projectors' lag
// against.
var processStates = slices.Concat([]string{streamInfo("KV_" + LeaseBucket), streamInfo(LedgerStream),
	"$JS.API.CONSUMER.LIST." + LedgerStream, "$JS.API.CONSUMER.INFO." + LedgerStream + ".>"}, getMsg("KV_"+LeaseBucket),
	getMsg(LedgerStream), []string{streamInfo("KV_" + HeartbeatBucket)}, getMsg("KV_"+HeartbeatBucket))

// heartbeats is what every producer role may do with HeartbeatBucket:
// create it (not change it) and put keys (own, the key of the producer
// role's own token; Proxy's: any).
func heartbeats(own string) []string {
	return append(createStream("KV_"+HeartbeatBucket), "$KV."+HeartbeatBucket+"."+own)
}

// IsForwarder reports whether r is a per-forwarder role, and whose.
func (r Principal) IsForwarder() (name string, ok bool) {
	return strings.CutPrefix(string(r), forwarderPrefix)
}

// ParsePrincipal checks a role name.
func ParsePrincipal(s string) (Principal, error) {
	r := Principal(s)
	if _, ok := r.IsProducer(); ok && len(s) > len(producerPrefix) {
		return r, nil
	}
	if name, ok := r.IsForwarder(); ok && name != "" && Forwarder(name) == r {
		return r, nil
	}
	if !slices.Contains(Principals, r) {
		var names []string
		for _, r := range Principals {
			names = append(names, string(r))
		}
		return "", fmt.Errorf("bus role %q unknown (want one of %s, producer-NAME or forwarder-NAME)", s, strings.Join(names, ", "))
	}
	return r, nil
}

// InboxPrefix is the reply-subject prefix a role's connections use
// (nats.CustomInboxPrefix). Each role may subscribe only below its own, so
// no role reads the replies another role's requests get.
func (r Principal) InboxPrefix() string {
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

// ledgerDeny is editDeny but for deleting one message of AUDIT_EVENTS
// (an erasure) or of AUDIT_BULK (a piece copied to the store).
var ledgerDeny = slices.Concat(slices.DeleteFunc(slices.Clone(editDeny), func(s string) bool { return s == "$JS.API.STREAM.MSG.DELETE.>" }),
	[]string{"$JS.API.STREAM.MSG.DELETE." + LedgerStream, "$JS.API.STREAM.MSG.DELETE." + RejectStream,
		"$JS.API.STREAM.MSG.DELETE.KV_" + LeaseBucket, "$JS.API.STREAM.MSG.DELETE.KV_" + ApprovalsBucket, "$JS.API.STREAM.MSG.DELETE.KV_" + AccessBucket, "$JS.API.STREAM.MSG.DELETE.KV_" + PIIKeysBucket})

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

// createStream allows creating stream s, not changing it: a role that
// may make the personal-data keys bucket must not be able to turn off its
// erasure (ledger/piikeys).
func createStream(s string) []string {
	return []string{"$JS.API.STREAM.CREATE." + s, streamInfo(s)}
}

// consume allows creating, reading and removing consumers of stream s
// and acknowledging its messages.
func consume(s string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + s, "$JS.API.CONSUMER.CREATE." + s + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>", "$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
		"$JS.API.CONSUMER.NAMES." + s, "$JS.API.CONSUMER.LIST." + s,
		"$JS.ACK." + s + ".>", "$JS.FC." + s + ".>",
	}
}

// readLedger allows creating, reading and removing consumers of
// AUDIT_LEDGER whose name is in the request's subject. The legacy
// ephemeral request ($JS.API.CONSUMER.CREATE.<stream>) is left out: it
// takes the consumer's name from the request's body, where no subject
// permission can see it, and would update a forwarder's durable consumer
// of that name.
func readLedger() []string {
	s := LedgerStream
	return []string{
		"$JS.API.CONSUMER.CREATE." + s + ".>", "$JS.API.CONSUMER.DURABLE.CREATE." + s + ".>",
		"$JS.API.CONSUMER.INFO." + s + ".>", "$JS.API.CONSUMER.DELETE." + s + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + s + ".>",
		"$JS.API.CONSUMER.NAMES." + s, "$JS.API.CONSUMER.LIST." + s,
		"$JS.ACK." + s + ".>", "$JS.FC." + s + ".>",
	}
}

// ownConsumer is what forwarder name may do with its durable consumer:
// create or update it, read its state, pull from it, reset it to its
// acknowledged floor and acknowledge.
func ownConsumer(name string) []string {
	s, c := LedgerStream, ForwarderDurable(name)
	return []string{
		"$JS.API.CONSUMER.CREATE." + s + "." + c, "$JS.API.CONSUMER.CREATE." + s + "." + c + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + s + "." + c,
		"$JS.API.CONSUMER.INFO." + s + "." + c, "$JS.API.CONSUMER.MSG.NEXT." + s + "." + c,
		"$JS.API.CONSUMER.RESET." + s + "." + c, // a forwarder starting takes back what a killed one held
		"$JS.ACK." + s + "." + c + ".>",
	}
}

// othersConsumer is every request on forwarder name's durable consumer
// (create, update, info, delete, pause, pull, leader step-down) and its
// acknowledgements, denied to the reader.
func othersConsumer(name string) []string {
	s, c := LedgerStream, ForwarderDurable(name)
	return []string{
		"$JS.API.CONSUMER.*." + s + "." + c, "$JS.API.CONSUMER.*." + s + "." + c + ".>",
		"$JS.API.CONSUMER.*.*." + s + "." + c, "$JS.API.CONSUMER.*.*." + s + "." + c + ".>",
		"$JS.ACK." + s + "." + c + ".>", "$JS.FC." + s + "." + c + ".>",
	}
}

// kv allows reading and writing the keys of bucket b, watching it, and
// looking it up.
func kv(b string) []string {
	s := "KV_" + b
	return slices.Concat([]string{"$KV." + b + ".>", streamInfo(s)}, getMsg(s), consume(s))
}

// Permissions returns what r may do on a bus whose other roles are
// others: the reader is denied the consumer of every forwarder among them
// (and of each of Forwarders in any case).
func (r Principal) Permissions(others ...Principal) Permissions {
	inbox := []string{r.InboxPrefix() + ".>"}
	switch r {
	case Admin:
		return Permissions{PublishAllow: []string{">"}, SubscribeAllow: []string{">"}}
	case Ledger:
		return Permissions{
			PublishAllow: slices.Concat(common,
				// Erasing an event that holds a detector's match, once its
				// rejection is sealed (ledger/ingest).
				[]string{LedgerSubjects, LiveSubjects, RejectSubject, "$JS.API.STREAM.MSG.DELETE." + EventsStream},
				// Reading each bulk piece an event names, and deleting it
				// once it is copied beside its segment (docs/FORMAT.md §1.7).
				[]string{"$JS.API.STREAM.MSG.DELETE." + BulkStream}, manage(BulkStream), getMsg(BulkStream),
				manage(EventsStream), manage(LedgerStream), manage(RejectStream),
				consume(EventsStream), getMsg(EventsStream), getMsg(LedgerStream),
				manage("KV_"+LeaseBucket), kv(LeaseBucket),
				createStream("KV_"+PIIKeysBucket), kv(PIIKeysBucket),
			),
			PublishDeny:    ledgerDeny,
			SubscribeAllow: inbox,
		}
	case API:
		return Permissions{
			// Readers open bulk pieces not yet copied to the store
			// (docs/FORMAT.md §1.7): the API reads AUDIT_BULK.
			PublishAllow: slices.Concat(common, []string{EventsSubjects, BatchSubjects, streamInfo(EventsStream)}, manage("KV_"+ApprovalsBucket), kv(ApprovalsBucket),
				[]string{streamInfo(BulkStream)}, getMsg(BulkStream),
				manage("KV_"+AccessBucket), kv(AccessBucket),
				createStream("KV_"+PIIKeysBucket), kv(PIIKeysBucket), processStates),
			PublishDeny:    slices.Concat(editDeny, ReservedDeny),
			SubscribeAllow: inbox,
		}
	case Proxy:
		return Permissions{
			PublishAllow: slices.Concat(common, []string{EventsSubjects, BatchSubjects, BulkSubjects, streamInfo(EventsStream)}, kv(ApprovalsBucket), kv(AccessBucket),
				createStream("KV_"+PIIKeysBucket), kv(PIIKeysBucket), heartbeats(">")),
			PublishDeny:    slices.Concat(editDeny, ReservedDeny),
			SubscribeAllow: inbox,
		}
	case Reader:
		deny := slices.Clone(editDeny)
		names := slices.Clone(Forwarders)
		for _, o := range others {
			if name, ok := o.IsForwarder(); ok && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		for _, name := range names {
			deny = append(deny, othersConsumer(name)...)
		}
		return Permissions{
			PublishAllow:   slices.Concat(common, []string{streamInfo(LedgerStream)}, getMsg(LedgerStream), readLedger()),
			PublishDeny:    deny,
			SubscribeAllow: slices.Concat(inbox, []string{LedgerSubjects, LiveSubjects}),
		}
	}
	if name, ok := r.IsForwarder(); ok {
		return Permissions{
			PublishAllow:   slices.Concat(common, []string{streamInfo(LedgerStream)}, ownConsumer(name)),
			PublishDeny:    editDeny,
			SubscribeAllow: inbox,
		}
	}
	token, ok := r.IsProducer()
	if !ok {
		return Permissions{}
	}
	// tenant, then the two or three tokens of a producer's event type
	// (access.granted, ssh.certificate.issued; ledger.* types are the
	// writer's own), then its own token; its bulk pieces under its own
	// token too (BulkSubject), so the writer knows whose piece an event
	// names.
	return Permissions{
		PublishAllow: slices.Concat(common, []string{"audit.events.*.*.*." + token, "audit.events.*.*.*.*." + token, "audit.batch." + token, "audit.bulk." + token + ".*",
			streamInfo(EventsStream)}, kv(ApprovalsBucket), kv(AccessBucket),
			createStream("KV_"+PIIKeysBucket), kv(PIIKeysBucket), heartbeats("*."+token)),
		PublishDeny:    slices.Concat(editDeny, ReservedDeny),
		SubscribeAllow: inbox,
	}
}
