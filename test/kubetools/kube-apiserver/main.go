// Command kube-apiserver is the stock Kubernetes API server, built from the
// k8s.io/kubernetes module as its own main does.
package main

import (
	"os"
	_ "time/tzdata" // time zones for CronJob, as the stock build has

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
