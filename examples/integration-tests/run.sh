#!/usr/bin/env bash
# The same checks as tests/canary_and_fault.rs, as a shell test suite: pilotfish serve + bootstrap + wait + curl.
# Run from anywhere: examples/integration-tests/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

envoy=$(scripts/envoy)
cargo build --quiet --locked -p controlplane --bin pilotfish -p e2e --bin sample-backend
bin=$root/target/debug
# Fixed loopback ports for this suite: gateway 18080, backends 18101/18102, xDS 18010, admin 18014.
admin=127.0.0.1:18014
"$bin/sample-backend" stable 127.0.0.1:18101 2>/dev/null & pids+=($!)
"$bin/sample-backend" canary 127.0.0.1:18102 2>/dev/null & pids+=($!)
mkdir "$work/config"

config() { # $1: the VirtualService's http routes
  cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: checkout}
spec:
  hosts: [checkout.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 18101}, labels: {track: stable}}
  - {address: 127.0.0.1, ports: {http: 18102}, labels: {track: canary}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: checkout}
spec:
  host: checkout.local
  subsets: [{name: stable, labels: {track: stable}}, {name: canary, labels: {track: canary}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {app: edge}
  servers: [{port: {number: 18080, name: http, protocol: HTTP}, bind: 127.0.0.1, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: checkout}
spec:
  hosts: [shop.example]
  gateways: [edge]
  http:
$1
YAML
}

config "  - route:
    - {destination: {host: checkout.local, subset: stable}, weight: 90}
    - {destination: {host: checkout.local, subset: canary}, weight: 10}" > "$work/config/checkout.yaml"

"$bin/pilotfish" serve --config-dir "$work/config" --xds-address 127.0.0.1:18010 --admin-address $admin 2>"$work/pilotfish.log" &
pids+=($!)
"$bin/pilotfish" bootstrap --node-id edge-1 --role gateway --labels app=edge --xds-address 127.0.0.1:18010 \
  --admin-port 0 >"$work/envoy.yaml"
"$envoy" -c "$work/envoy.yaml" --base-id 18 --concurrency 1 --log-level warn 2>"$work/envoy.log" & pids+=($!)

failures=0
check() { # $1: description, $2: actual, $3: expected
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got $2, expected $3"; failures=$((failures + 1)); fi
}
request() { curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.example' "$@" http://127.0.0.1:18080/cart; }

"$bin/pilotfish" wait --all --timeout 20s --admin-address $admin
canary=$(for _ in $(seq 200); do curl -s -H 'Host: shop.example' http://127.0.0.1:18080/cart; done | grep -c canary || true)
check "about 10% of 200 requests reach the canary" "$([ "$canary" -ge 5 ] && [ "$canary" -le 45 ] && echo yes || echo "no ($canary)")" yes

config "  - route:
    - {destination: {host: checkout.local, subset: canary}, weight: 100}" > "$work/config/checkout.yaml"
"$bin/pilotfish" wait --all --timeout 20s --admin-address $admin
check "after promotion the first request reaches the canary" "$(curl -s -H 'Host: shop.example' http://127.0.0.1:18080/cart)" canary

config "  - match: [{headers: {x-chaos: {exact: \"on\"}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: checkout.local, subset: stable}}]
  - route: [{destination: {host: checkout.local, subset: stable}}]" > "$work/config/checkout.yaml"
"$bin/pilotfish" wait --all --timeout 20s --admin-address $admin
check "a request without the chaos header is served" "$(request)" 200
check "the injected fault answers 503" "$(request -H 'x-chaos: on')" 503

echo "$((4 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
