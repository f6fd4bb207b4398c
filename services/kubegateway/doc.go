// Package kubegateway is the Kubernetes gateway: kubectl and client-go
// programs talk to it over TLS as to an API server, with an OIDC token
// (whose audience is the gateway) as their bearer token — the kubeconfig
// `auditledger kubeconfig` writes gets it from the exec credential plugin
// `auditledger kube-credential`. The gateway verifies the token, parses
// each request as the API server does (k8s.io/apiserver's request info:
// verb, API group, version, resource, subresource, namespace, name),
// judges it by its policy (deny, hold for an approval, allow), records it
// through the gateway core (services/gateway), and forwards it to the API
// server with its own credential, impersonating the person
// (Impersonate-User, -Uid, -Group), so that the cluster's RBAC and audit
// log apply to them. Requests that carry their own Impersonate-* headers
// are refused. Secret values never reach the ledger: bodies of requests to
// secrets are recorded as digests, and reading secrets needs a policy rule
// that allows it. Every error a client gets is a Kubernetes Status.
//
// exec, attach and port-forward (connection upgrades) are refused with a
// Status: their streams are not relayed yet.
package kubegateway
