//! Prometheus metrics: what was pushed, what was rejected, how long translation and convergence take.
//!
//! Connected proxies are counted from the registry when scraped, so the gauge can never drift from the truth.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::registry::ProxyRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// CDS, EDS, LDS or RDS.
    pub xds_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

/// Latency buckets from 1 ms to 30 s (Istio's convergence histogram starts at 100 ms; we are faster).
fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0].into_iter()
}

#[derive(Debug)]
pub struct Metrics {
    pub pushes: Family<TypeLabels, Counter>,
    pub push_bytes: Family<TypeLabels, Counter>,
    pub nacks: Family<TypeLabels, Counter>,
    /// Input change → every type the proxy asked for ACKed, per proxy.
    pub convergence: Histogram,
    pub translation: Histogram,
    pub debounce: Histogram,
    pub config_reloads: Counter,
    /// Changes that only touched endpoints and took the fast path.
    pub endpoint_fast_path: Counter,
    connected: Family<ClassLabels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pilotfish");
        let pushes = Family::<TypeLabels, Counter>::default();
        let push_bytes = Family::<TypeLabels, Counter>::default();
        let nacks = Family::<TypeLabels, Counter>::default();
        let connected = Family::<ClassLabels, Gauge>::default();
        let convergence = Histogram::new(latency_buckets());
        let translation = Histogram::new(latency_buckets());
        let debounce = Histogram::new(latency_buckets());
        let config_reloads = Counter::default();
        let endpoint_fast_path = Counter::default();
        registry.register("xds_pushes", "xDS responses sent, by type", pushes.clone());
        registry.register("xds_push_bytes", "Bytes of resources sent, by type", push_bytes.clone());
        registry.register("xds_nacks", "Responses proxies rejected, by type", nacks.clone());
        registry.register("xds_connected_proxies", "Connected proxies, by proxy class", connected.clone());
        registry.register(
            "convergence_seconds",
            "From a new snapshot reaching a proxy's stream to the proxy having ACKed all of it",
            convergence.clone(),
        );
        registry.register(
            "translation_seconds",
            "Time to translate the inputs for one proxy class",
            translation.clone(),
        );
        registry.register(
            "debounce_seconds",
            "Time from the first change of a burst to its translation",
            debounce.clone(),
        );
        registry.register("config_reloads", "Times the configuration was read", config_reloads.clone());
        registry.register(
            "endpoint_fast_path",
            "Changes that only touched endpoints, pushed without a full translation",
            endpoint_fast_path.clone(),
        );
        Metrics {
            pushes,
            push_bytes,
            nacks,
            convergence,
            translation,
            debounce,
            config_reloads,
            endpoint_fast_path,
            connected,
            registry,
        }
    }

    pub fn for_type(kind: api_protos::ResourceType) -> TypeLabels {
        TypeLabels { xds_type: kind.short_name().to_owned() }
    }

    /// Prometheus text exposition, with connected proxies counted now.
    pub fn encode(&self, proxies: &ProxyRegistry) -> String {
        self.connected.clear();
        for proxy in proxies.list() {
            self.connected.get_or_create(&ClassLabels { class: proxy.class.to_string() }).inc();
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
