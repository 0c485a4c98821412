// Command etcd is a thin wrapper around etcd's own entry point.
//
// go.etcd.io/etcd/server/v3 is itself a main package, which Go cannot import or
// `go build` from another module with a version pin alone; wrapping etcdmain.Main
// gives a binary identical in behaviour to upstream etcd at the pinned version.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
