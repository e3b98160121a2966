// CoreDNS for scripts/cluster: the cluster's DNS server, built from CoreDNS's Go module with only the plugins its
// Corefile uses (the full plugin set would compile several cloud SDKs for nothing). Test peer only: nothing here
// is part of pilotfish.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
)

func main() {
	coremain.Run()
}
