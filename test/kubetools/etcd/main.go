// Command etcd is the stock etcd server, built from the go.etcd.io/etcd/server
// module as its own main does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
