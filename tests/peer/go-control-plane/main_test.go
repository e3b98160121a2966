package main

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// The cases of pilotfish's translator/src/proxy.rs: the key must be the class string pilotfish prints.
func TestClassOfIsPilotfishsProxyClass(t *testing.T) {
	node := func(id string, metadata map[string]any) *core.Node {
		s, err := structpb.NewStruct(metadata)
		if err != nil {
			t.Fatal(err)
		}
		return &core.Node{Id: id, Metadata: s}
	}
	for _, c := range []struct {
		node *core.Node
		want string
	}{
		{node("gw-1", map[string]any{"ROLE": "gateway", "NAMESPACE": "istio-system",
			"LABELS": map[string]any{"istio": "ingressgateway", "app": "gw", "n": 1.0}}),
			"gateway/istio-system{app=gw,istio=ingressgateway}"},
		{node("router~10.0.0.1~ingress-abc.istio-system~istio-system.svc.cluster.local", nil), "gateway/istio-system"},
		{node("sidecar~10.0.0.2~reviews-v1-xyz.bookinfo~bookinfo.svc.cluster.local", nil), "sidecar/bookinfo"},
		{node("router~1.2.3.4~gw.a~a.svc", map[string]any{"ROLE": "sidecar", "NAMESPACE": "b"}), "sidecar/b"},
		{&core.Node{Id: "plain"}, "sidecar/default"},
		{node("a", map[string]any{"OUTBOUND_BIND": "127.0.0.2", "ROLE": "SIDECAR", "NAMESPACE": ""}), "sidecar/default@127.0.0.2"},
	} {
		if got := classOf(c.node); got != c.want {
			t.Errorf("classOf(%v) = %q, want %q", c.node, got, c.want)
		}
	}
}
