//! The ADS server: `StreamAggregatedResources` (SotW) and `DeltaAggregatedResources` over one state machine.
//!
//! Each stream is one task. It learns the proxy's class from the node in the first request, watches that class's
//! snapshot in the cache, and feeds requests and snapshots to [`stream::StreamState`], sending what it returns.
//! Responses go out as shared, pre-encoded chunks (see `grpc` and `wire`), not through tonic's encoder.
//! The task ends when the proxy goes (end of stream, or an h2 reset, which tonic reports as an error), when the
//! response channel closes, or on shutdown; the registry entry goes with it.

mod grpc;
pub mod stream;
mod wire;

/// The ADS gRPC service, generated over api-protos' messages (see `build.rs`).
#[allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]
pub mod ads {
    include!(concat!(env!("OUT_DIR"), "/envoy.service.discovery.v3.rs"));
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_protos::ResourceType;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};
use translator::ProxyClass;

use crate::State;
use crate::metrics::Metrics;
use crate::registry::{AckTiming, TypeTiming};
use stream::{RequestOutcome, StreamState};
use wire::Wire;

/// Responses queued per stream before the task waits for the proxy to read them.
const RESPONSE_QUEUE: usize = 16;

/// What the ADS streams share.
#[derive(Clone, Debug)]
pub struct AdsService {
    state: State,
    shutdown: watch::Receiver<bool>,
}

/// Failures of the server as a whole (not of one stream).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to serve xDS: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl AdsService {
    pub fn new(state: State, shutdown: watch::Receiver<bool>) -> AdsService {
        AdsService { state, shutdown }
    }

    /// Starts the task of a new stream; its responses come out of the returned queue.
    fn start<W: Wire>(&self, peer: Option<SocketAddr>, inbound: Streaming<W::Request>) -> mpsc::Receiver<grpc::Queued> {
        let (responses, receiver) = mpsc::channel(RESPONSE_QUEUE);
        let task = StreamTask::<W> {
            service: self.clone(),
            inbound,
            responses,
            changed_at: None,
            held: Vec::new(),
            in_flight: Default::default(),
            timing: ResourceType::ALL.map(|kind| TypeTiming { kind, last_sent: None, last_ack: None }),
        };
        let span =
            info_span!("ads", protocol = W::NAME, peer = %peer.map_or_else(|| "?".to_owned(), |p| p.to_string()));
        tokio::spawn(task.run().instrument(span));
        receiver
    }
}

struct StreamTask<W: Wire> {
    service: AdsService,
    inbound: Streaming<W::Request>,
    responses: mpsc::Sender<grpc::Queued>,
    /// When the latest snapshot reached this stream, until the proxy has ACKed all of it.
    changed_at: Option<Instant>,
    /// What was held back at the last push (logged when it changes).
    held: Vec<stream::Held>,
    /// Per type: the response awaiting an ACK (nonce, when it was sent), and the timings published in the registry.
    in_flight: [Option<(String, Instant)>; 4],
    timing: [TypeTiming; 4],
}

/// Why a stream ended.
enum End {
    ProxyClosed,
    ProxyGone(Status),
    Shutdown,
}

impl<W: Wire> StreamTask<W> {
    async fn run(mut self) {
        let first = match self.inbound.message().await {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(status) => {
                debug!(%status, "stream ended before its first request");
                return;
            }
        };
        let Some(node) = W::node(&first).cloned() else {
            warn!("first request carries no node; closing the stream");
            let _ = self.responses.send(Err(Status::invalid_argument("the first request must carry the node"))).await;
            return;
        };
        let class = ProxyClass::from_node(&node);
        let mut snapshots = self.service.state.cache.watch(&class);
        let mut state = StreamState::new(W::PROTOCOL, Arc::clone(&snapshots.borrow_and_update()));
        let registration = self.service.state.registry.register(node.id.clone(), class.clone(), W::PROTOCOL);
        let span = info_span!("proxy", node = %node.id, class = %class, stream = registration.stream());
        async move {
            info!("proxy connected");
            let mut shutdown = self.service.shutdown.clone();
            let mut next = Some(first);
            let end = loop {
                if let Some(request) = next.take() {
                    if !self.handle(&mut state, request).await {
                        break End::ProxyClosed;
                    }
                    self.after_event(&state, &registration);
                }
                tokio::select! {
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break End::Shutdown;
                        }
                        let snapshot = Arc::clone(&snapshots.borrow_and_update());
                        debug!(snapshot = %snapshot, "new snapshot for the class");
                        self.changed_at = Some(Instant::now());
                        let responses = state.on_snapshot(snapshot);
                        if !self.send(responses).await {
                            break End::ProxyClosed;
                        }
                        self.after_event(&state, &registration);
                    }
                    message = self.inbound.message() => match message {
                        Ok(Some(request)) => next = Some(request),
                        Ok(None) => break End::ProxyClosed,
                        Err(status) => break End::ProxyGone(status),
                    },
                    () = stopped(&mut shutdown) => break End::Shutdown,
                }
            };
            match end {
                End::ProxyClosed => info!("proxy disconnected"),
                End::ProxyGone(status) => info!(%status, "proxy disconnected"),
                End::Shutdown => info!("closing the stream: shutting down"),
            }
            drop(registration);
        }
        .instrument(span)
        .await;
    }

    /// Applies one request and sends what it calls for. Returns false when the proxy can no longer be reached.
    async fn handle(&mut self, state: &mut StreamState, request: W::Request) -> bool {
        let type_url = W::type_url(&request);
        let Some(kind) = ResourceType::from_type_url(type_url) else {
            warn!(type_url, "ignoring a request for a type pilotfish does not serve");
            return true;
        };
        let arrived = Instant::now();
        let request = W::read(request);
        let names = request.subscribe.len();
        let nonce = request.response_nonce.clone();
        let (outcome, responses) = state.on_request(kind, request);
        // An ACK or NACK settles the response in flight; only an ACK says how long applying it took.
        if matches!(outcome, RequestOutcome::Ack { .. } | RequestOutcome::Nack { .. })
            && let Some((_, sent)) = self.in_flight[kind.index()].take_if(|(sent_nonce, _)| *sent_nonce == nonce)
            && matches!(outcome, RequestOutcome::Ack { .. })
        {
            self.timing[kind.index()].last_ack = Some(AckTiming { sent, acked: arrived });
        }
        match &outcome {
            RequestOutcome::Subscribed => debug!(type = %kind, names, "← request"),
            RequestOutcome::Ack { version } => debug!(type = %kind, %version, %nonce, "← ACK"),
            RequestOutcome::Nack { version, message } => {
                self.metrics().nacks.get_or_create(&Metrics::for_type(kind)).inc();
                warn!(type = %kind, rejected_version = %version, %nonce, error = %message, "← NACK: the proxy rejected the config and keeps its last accepted one");
            }
            RequestOutcome::Stale => debug!(type = %kind, %nonce, "← stale request ignored"),
        }
        self.send(responses).await
    }

    /// Says what make-before-break is holding back, once per change of what is held.
    fn note_held(&mut self, state: &StreamState) {
        if state.held() == self.held.as_slice() {
            return;
        }
        for held in state.held() {
            debug!(
                type = %held.kind,
                name = %held.name,
                waiting_for = ?held.waiting_for,
                "holding back the new version until the proxy has warmed these clusters (make-before-break)"
            );
        }
        self.held = state.held().to_vec();
    }

    fn metrics(&self) -> &Metrics {
        &self.service.state.metrics
    }

    /// Records change → ACK once every type the proxy asked for is synced after a snapshot change.
    fn observe_convergence(&mut self, sync: &[stream::TypeSync]) {
        let Some(changed_at) = self.changed_at else { return };
        if sync.iter().filter(|s| s.requested).all(|s| s.status() == crate::sync::SyncState::Synced) {
            self.metrics().convergence.observe(changed_at.elapsed().as_secs_f64());
            self.changed_at = None;
        }
    }

    /// After each request or snapshot: publish the stream's state, record convergence, log hold-backs.
    fn after_event(&mut self, state: &StreamState, registration: &crate::registry::Registration) {
        let sync = state.sync();
        self.observe_convergence(&sync);
        self.note_held(state);
        registration.update(state.snapshot().version(), sync, self.timing.to_vec(), acked_sets(state));
    }

    async fn send(&mut self, responses: Vec<stream::Response>) -> bool {
        for response in responses {
            let labels = Metrics::for_type(response.kind);
            self.metrics().pushes.get_or_create(&labels).inc();
            let bytes: usize = response.resources.iter().map(|r| r.body.value.len()).sum();
            self.metrics().push_bytes.get_or_create(&labels).inc_by(bytes as u64);
            debug!(
                type = %response.kind,
                version = %response.version,
                nonce = %response.nonce,
                resources = ?response.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
                removed = ?response.removed,
                "→ response"
            );
            let message = W::write(&response);
            if let Err(status) = &message {
                warn!(type = %response.kind, %status, "failed to frame a response; closing the stream");
            }
            let framed = message.is_ok();
            if self.responses.send(message).await.is_err() || !framed {
                return false;
            }
            let sent = Instant::now();
            self.in_flight[response.kind.index()] = Some((response.nonce.clone(), sent));
            self.timing[response.kind.index()].last_sent = Some(sent);
        }
        true
    }
}

fn acked_sets(state: &StreamState) -> Vec<Arc<crate::snapshot::ResourceSet>> {
    ResourceType::ALL.iter().map(|kind| Arc::clone(state.acked(*kind))).collect()
}

/// Completes once shutdown is signalled (or the signal's sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// The connections `listener` accepts, with Nagle's algorithm off. tonic turns it off only on listeners it binds
/// itself; left on, a response written while the previous one is still unacknowledged waits for the proxy's
/// delayed ACK (40 ms on Linux), which a change that sends several responses can run into.
fn no_delay(listener: TcpListener) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(err) = stream.set_nodelay(true) {
            warn!(error = %err, "could not turn off Nagle's algorithm on an xDS connection");
        }
        Ok(stream)
    })
}

/// Serves ADS on `listener` until `shutdown` completes; open streams are closed then.
pub async fn serve(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (stop, stopped) = watch::channel(false);
    let service = AdsService::new(state, stopped);
    let local: Option<SocketAddr> = listener.local_addr().ok();
    info!(address = ?local, "serving xDS (ADS, SotW and Delta)");
    tonic::transport::Server::builder()
        // Notices proxies that vanished without closing their connection.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(grpc::AdsRoutes::new(service))
        .serve_with_incoming_shutdown(no_delay(listener), async move {
            shutdown.await;
            // Streams never end by themselves: tell their tasks, or a graceful shutdown would wait forever.
            let _ = stop.send(true);
        })
        .await?;
    Ok(())
}
