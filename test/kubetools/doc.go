// Package kubetools holds the programs that the Kubernetes tests run: the
// stock kube-apiserver and etcd, and kubectl, each a thin main over its
// upstream module as that project's own main is, and a test kubelet (the
// kubelet's streaming server code over processes on the host, no
// containers). It is a module of its own,
// so the product's module graph does not carry them; test/kubetest installs
// them with install.sh (go install).
package kubetools
