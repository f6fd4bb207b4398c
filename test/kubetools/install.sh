#!/usr/bin/env bash
# Installs kube-apiserver, etcd, kubectl and the test kubelet, built from this module's pinned
# versions, into DIR (default: $(go env GOPATH)/kubetools/v1.37.2, where
# test/kubetest looks). Their version variables are set as the Kubernetes
# release build sets them, so the API server reports v1.37.2 and kubectl
# sends its real user agent. go install skips what is up to date (no VCS
# stamp, so a new commit of this repository does not relink them).
set -euo pipefail
cd "$(dirname "$0")"
version=v1.37.2
dir=${1:-$(go env GOPATH)/kubetools/$version}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
done
GOFLAGS=-buildvcs=false GOWORK=off GOBIN=$dir go install -ldflags="$ldflags" ./etcd ./kube-apiserver ./kubectl ./kubelet
