package kubegateway

import (
	"encoding/json"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// writeStatus answers with a Kubernetes Status, as the API server does for
// every error, so that kubectl prints the message and classifies the
// reason (kind Status, apiVersion v1, status Failure).
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	}
	b, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditledger"`)
	}
	w.WriteHeader(code)
	w.Write(b)
}

func forbidden(w http.ResponseWriter, msg string) {
	writeStatus(w, http.StatusForbidden, metav1.StatusReasonForbidden, msg)
}

func unavailable(w http.ResponseWriter, msg string) {
	writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, msg)
}
