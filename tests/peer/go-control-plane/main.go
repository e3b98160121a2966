// gcp-peer serves, through go-control-plane's snapshot cache, the same xDS resources pilotfish would serve, so
// one load generator can measure both side by side (issue 6, item 6). Benchmark peer only: pilotfish is Rust.
//
// Input: JSON files written by `pilotfish translate -o json` (one per proxy class). Each file's "class" field
// (e.g. "gateway/istio-system{istio=ingressgateway}") is the snapshot key, and a NodeHash computes the same key from
// an Envoy node the way pilotfish does (node.metadata ROLE, NAMESPACE, LABELS, OUTBOUND_BIND; Istio-style node ids
// where the metadata is silent), so every proxy of one class shares one snapshot, like pilotfish.
//
// Changes: the files are watched (fsnotify on their directories, debounced) and re-read on SIGHUP; a file whose
// bytes changed is parsed again and its snapshot set with new versions. Versions are content hashes per type
// (--versions=type, the default: a change re-sends only the types that changed) or one per snapshot
// (--versions=snapshot: every type is re-sent on any change, as with cache.NewSnapshot).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // /debug/pprof on the admin address
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	// The message types protojson must resolve in "@type" fields: the four resource types, and the typed_config
	// extensions pilotfish emits (plus a few common ones for raw resources).
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// The JSON keys of `pilotfish translate -o json` and the xDS types they hold.
var kinds = []struct {
	key     string
	typeURL resource.Type
}{
	{"clusters", resource.ClusterType},
	{"endpoints", resource.EndpointType},
	{"listeners", resource.ListenerType},
	{"routes", resource.RouteType},
}

// fallbackKey is the snapshot for nodes whose class has none of its own (`--snapshot '*=FILE'`).
const fallbackKey = "*"

type snapshotFlag struct {
	key  string // "" = the file's "class"
	path string
}

type snapshotFlags []snapshotFlag

func (s *snapshotFlags) String() string { return fmt.Sprint(*s) }

// Set reads FILE, CLASS=FILE or *=FILE. Class names contain '=' (labels), so the last '=' separates.
func (s *snapshotFlags) Set(value string) error {
	if i := strings.LastIndexByte(value, '='); i >= 0 {
		*s = append(*s, snapshotFlag{key: value[:i], path: value[i+1:]})
	} else {
		*s = append(*s, snapshotFlag{path: value})
	}
	return nil
}

func main() {
	var snapshots snapshotFlags
	xdsAddress := flag.String("xds-address", "127.0.0.1:18000", "where Envoys connect for ADS (gRPC, SotW and Delta); port 0 picks one")
	adminAddress := flag.String("admin-address", "", "optional HTTP address for /healthz, /snapshots and /debug/pprof")
	flag.Var(&snapshots, "snapshot", "`[CLASS=]FILE`: a `pilotfish translate -o json` file; its snapshot key is CLASS, "+
		"else the file's \"class\" field; `*=FILE` serves nodes of any other class (repeatable)")
	debounce := flag.Duration("debounce", 100*time.Millisecond, "re-read changed files once they have been quiet this long")
	versions := flag.String("versions", "type", "version per `type` (content hash; only changed types are re-sent) or per `snapshot`")
	verbose := flag.Bool("verbose", false, "log every stream, request and response")
	flag.Parse()
	if len(snapshots) == 0 || flag.NArg() > 0 || (*versions != "type" && *versions != "snapshot") {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(log.Ltime | log.Lmicroseconds)

	peer := &peer{perType: *versions == "type", loaded: map[string]*loaded{}, unknown: map[string]bool{}}
	peer.cache = cache.NewSnapshotCache(true, peer, nil)
	for _, s := range snapshots {
		abs, err := filepath.Abs(s.path)
		if err != nil {
			log.Fatal(err)
		}
		peer.files = append(peer.files, &watchedFile{key: s.key, path: abs})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, f := range peer.files {
		if err := peer.load(ctx, f); err != nil {
			log.Fatalf("%s: %v", f.path, err)
		}
	}

	callbacks := &callbacks{verbose: *verbose}
	xds := server.NewServer(ctx, peer.cache, callbacks)
	// As go-control-plane's own example server: many streams per connection, keepalive Envoy's bootstrap allows.
	grpcServer := grpc.NewServer(
		grpc.MaxConcurrentStreams(1000000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, xds)
	listener, err := net.Listen("tcp", *xdsAddress)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := grpcServer.Serve(listener); err != nil {
			log.Fatalf("xds: %v", err)
		}
	}()

	admin := ""
	if *adminAddress != "" {
		adminListener, err := net.Listen("tcp", *adminAddress)
		if err != nil {
			log.Fatal(err)
		}
		admin = adminListener.Addr().String()
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		http.HandleFunc("/snapshots", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(peer.status(callbacks))
		})
		go func() { log.Fatal(http.Serve(adminListener, nil)) }()
	}

	go peer.watch(ctx, *debounce)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			peer.reloadAll(ctx, "SIGHUP")
		}
	}()

	// One line on stdout when serving, for drivers that wait for it (and learn the ports when 0 was asked for).
	fmt.Printf("gcp-peer serving xds=%s admin=%s snapshots=%d\n", listener.Addr(), admin, len(peer.files))
	<-ctx.Done()
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		grpcServer.Stop()
	}
}

type watchedFile struct {
	key  string // from --snapshot; "" = the file's class
	path string
	hash string // of the bytes last loaded
}

type loaded struct {
	Path      string            `json:"path"`
	Versions  map[string]string `json:"versions"`
	Resources map[string]int    `json:"resources"`
	SetAt     time.Time         `json:"set_at"`
	Loads     int               `json:"loads"`
}

type peer struct {
	cache   cache.SnapshotCache
	perType bool
	files   []*watchedFile
	loadMu  sync.Mutex // one load at a time

	mu      sync.RWMutex
	loaded  map[string]*loaded // by snapshot key
	unknown map[string]bool    // classes seen without a snapshot (logged once)
}

// ID is the NodeHash: a node's snapshot key is its class, or the fallback when its class has no snapshot.
func (p *peer) ID(node *core.Node) string {
	class := classOf(node)
	p.mu.RLock()
	_, known := p.loaded[class]
	_, fallback := p.loaded[fallbackKey]
	logged := p.unknown[class]
	p.mu.RUnlock()
	switch {
	case known:
		return class
	case fallback:
		return fallbackKey
	}
	if !logged {
		p.mu.Lock()
		p.unknown[class] = true
		p.mu.Unlock()
		log.Printf("node %q is of class %q, which has no snapshot (and there is no '*=FILE'): it waits", node.GetId(), class)
	}
	return class
}

func (p *peer) reloadAll(ctx context.Context, why string) {
	for _, f := range p.files {
		if err := p.load(ctx, f); err != nil {
			log.Printf("%s (%s): %v; keeping the last good snapshot", f.path, why, err)
		}
	}
}

// load reads f and, when its bytes changed, sets the snapshot of its key.
func (p *peer) load(ctx context.Context, f *watchedFile) error {
	p.loadMu.Lock()
	defer p.loadMu.Unlock()
	started := time.Now()
	data, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:8])
	if hash == f.hash {
		return nil
	}
	var file map[string]json.RawMessage
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("not a `pilotfish translate -o json` file: %w", err)
	}
	key := f.key
	if key == "" {
		if err := json.Unmarshal(file["class"], &key); err != nil || key == "" {
			return errors.New(`no "class" field: name the class, --snapshot CLASS=FILE`)
		}
	}
	snapshot := &cache.Snapshot{}
	info := &loaded{Path: f.path, Versions: map[string]string{}, Resources: map[string]int{}, SetAt: time.Now()}
	for _, kind := range kinds {
		var items []json.RawMessage
		if raw, ok := file[kind.key]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return fmt.Errorf("%s: %w", kind.key, err)
			}
		}
		resources := make([]types.Resource, 0, len(items))
		for i, item := range items {
			message, err := unmarshal(item, kind.typeURL)
			if err != nil {
				return fmt.Errorf("%s[%d]: %w", kind.key, i, err)
			}
			resources = append(resources, message)
		}
		version := hash
		if p.perType {
			typeSum := sha256.Sum256(file[kind.key])
			version = hex.EncodeToString(typeSum[:8])
		}
		snapshot.Resources[cache.GetResponseType(kind.typeURL)] = cache.NewResources(version, resources)
		info.Versions[kind.key] = version
		info.Resources[kind.key] = len(resources)
	}
	if err := snapshot.Consistent(); err != nil {
		log.Printf("%s: snapshot not consistent (served anyway): %v", f.path, err)
	}
	p.mu.Lock()
	if previous := p.loaded[key]; previous != nil {
		info.Loads = previous.Loads
	}
	info.Loads++
	p.loaded[key] = info
	p.mu.Unlock()
	if err := p.cache.SetSnapshot(ctx, key, snapshot); err != nil {
		return err
	}
	f.hash = hash
	log.Printf("snapshot %q set from %s: %v, versions %v, in %v", key, filepath.Base(f.path), info.Resources,
		info.Versions, time.Since(started).Round(time.Microsecond))
	return nil
}

// unmarshal reads one resource in Envoy's JSON shape ("@type" first-class, snake_case or camelCase fields).
func unmarshal(item json.RawMessage, typeURL string) (types.Resource, error) {
	var packed anypb.Any
	if err := protojson.Unmarshal(item, &packed); err != nil {
		return nil, err
	}
	if packed.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("@type %s, want %s", packed.GetTypeUrl(), typeURL)
	}
	return packed.UnmarshalNew()
}

// watch re-reads the files once their directories have been quiet for `debounce` after a change to one of them
// (editors and `mv` replace files, so directories are watched, not the files).
func (p *peer) watch(ctx context.Context, debounce time.Duration) {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		log.Printf("not watching files: %v (SIGHUP still reloads)", err)
		return
	}
	defer watcher.Close()
	names := map[string]bool{}
	for _, f := range p.files {
		names[f.path] = true
		if err := watcher.Add(filepath.Dir(f.path)); err != nil {
			log.Printf("not watching %s: %v", filepath.Dir(f.path), err)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case event := <-watcher.Events:
			if names[filepath.Clean(event.Name)] && !event.Has(fsnotify.Chmod) {
				timer.Reset(debounce)
			}
		case err := <-watcher.Errors:
			log.Printf("watch: %v", err)
		case <-timer.C:
			p.reloadAll(ctx, "changed")
		}
	}
}

type status struct {
	Snapshots map[string]*loaded `json:"snapshots"`
	Streams   int64              `json:"streams"`
	Requests  int64              `json:"requests"`
	Responses int64              `json:"responses"`
	Nacks     int64              `json:"nacks"`
	Watches   map[string]int     `json:"watches_by_snapshot"`
}

func (p *peer) status(c *callbacks) status {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s := status{Snapshots: map[string]*loaded{}, Watches: map[string]int{},
		Streams: c.streams.Load(), Requests: c.requests.Load(), Responses: c.responses.Load(), Nacks: c.nacks.Load()}
	for k, v := range p.loaded {
		copied := *v
		s.Snapshots[k] = &copied
	}
	for _, key := range p.cache.GetStatusKeys() {
		info := p.cache.GetStatusInfo(key)
		s.Watches[key] = info.GetNumWatches() + info.GetNumDeltaWatches()
	}
	return s
}

// classOf is pilotfish's ProxyClass::from_node and its Display (`role/namespace{k=v,…}@bind`): the key of a node's
// snapshot.
func classOf(node *core.Node) string {
	metadata := node.GetMetadata()
	idRole, idNamespace := istioNodeID(node.GetId())
	role, ok := parseRole(stringField(metadata, "ROLE"))
	if !ok {
		role, ok = idRole, idRole != ""
	}
	if !ok {
		role = "sidecar"
	}
	namespace := stringField(metadata, "NAMESPACE")
	if namespace == "" {
		namespace = idNamespace
	}
	if namespace == "" {
		namespace = "default"
	}
	var class strings.Builder
	class.WriteString(role + "/" + namespace)
	if labels := metadata.GetFields()["LABELS"].GetStructValue(); labels != nil {
		var pairs []string
		for k, v := range labels.GetFields() {
			if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
				pairs = append(pairs, k+"="+s.StringValue)
			}
		}
		if len(pairs) > 0 {
			sort.Strings(pairs) // keys are unique, so this is by key, as pilotfish's BTreeMap
			class.WriteString("{" + strings.Join(pairs, ",") + "}")
		}
	}
	if bind := stringField(metadata, "OUTBOUND_BIND"); bind != "" {
		class.WriteString("@" + bind)
	}
	return class.String()
}

func parseRole(text string) (string, bool) {
	switch strings.ToLower(text) {
	case "gateway", "router":
		return "gateway", true
	case "sidecar":
		return "sidecar", true
	}
	return "", false
}

// istioNodeID reads `type~ip~pod.namespace~domain`.
func istioNodeID(id string) (role, namespace string) {
	parts := strings.Split(id, "~")
	if len(parts) < 2 {
		return "", ""
	}
	role, ok := parseRole(parts[0])
	if !ok {
		return "", ""
	}
	if len(parts) >= 3 {
		if i := strings.LastIndexByte(parts[2], '.'); i >= 0 {
			namespace = parts[2][i+1:]
		}
	}
	return role, namespace
}

func stringField(s *structpb.Struct, key string) string {
	if v, ok := s.GetFields()[key].GetKind().(*structpb.Value_StringValue); ok {
		return v.StringValue
	}
	return ""
}

// callbacks counts what the server does and logs NACKs (and, with --verbose, everything).
type callbacks struct {
	server.CallbackFuncs
	verbose                             bool
	streams, requests, responses, nacks atomic.Int64
}

func (c *callbacks) OnStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.streams.Add(1)
	if c.verbose {
		log.Printf("stream %d open (SotW) %s", id, typeURL)
	}
	return nil
}

func (c *callbacks) OnStreamClosed(id int64, node *core.Node) {
	c.streams.Add(-1)
	if c.verbose {
		log.Printf("stream %d closed (%s)", id, node.GetId())
	}
}

func (c *callbacks) OnDeltaStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.streams.Add(1)
	if c.verbose {
		log.Printf("stream %d open (Delta) %s", id, typeURL)
	}
	return nil
}

func (c *callbacks) OnDeltaStreamClosed(id int64, node *core.Node) {
	c.streams.Add(-1)
	if c.verbose {
		log.Printf("stream %d closed (%s)", id, node.GetId())
	}
}

func (c *callbacks) OnStreamRequest(id int64, r *discovery.DiscoveryRequest) error {
	c.requests.Add(1)
	if r.GetErrorDetail() != nil {
		c.nacks.Add(1)
		log.Printf("stream %d NACK %s version %q: %s", id, r.GetTypeUrl(), r.GetVersionInfo(), r.GetErrorDetail().GetMessage())
	} else if c.verbose {
		log.Printf("stream %d request %s version %q nonce %q names %v", id, r.GetTypeUrl(), r.GetVersionInfo(), r.GetResponseNonce(), r.GetResourceNames())
	}
	return nil
}

func (c *callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
	c.responses.Add(1)
	if c.verbose {
		log.Printf("stream %d response %s version %q nonce %q: %d resources", id, r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce(), len(r.GetResources()))
	}
}

func (c *callbacks) OnStreamDeltaRequest(id int64, r *discovery.DeltaDiscoveryRequest) error {
	c.requests.Add(1)
	if r.GetErrorDetail() != nil {
		c.nacks.Add(1)
		log.Printf("stream %d NACK (Delta) %s: %s", id, r.GetTypeUrl(), r.GetErrorDetail().GetMessage())
	} else if c.verbose {
		log.Printf("stream %d delta request %s nonce %q subscribe %v", id, r.GetTypeUrl(), r.GetResponseNonce(), r.GetResourceNamesSubscribe())
	}
	return nil
}

func (c *callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
	c.responses.Add(1)
	if c.verbose {
		log.Printf("stream %d delta response %s nonce %q: %d resources, %d removed", id, r.GetTypeUrl(), r.GetNonce(), len(r.GetResources()), len(r.GetRemovedResources()))
	}
}
