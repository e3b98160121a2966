//! The webhook's HTTPS server: TLS (rustls, the certificate of [`Certificate`], replaced while serving), HTTP/1.1,
//! `POST /inject` answered by [`Admission::review`]; any other path is 404.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::admission::{Admission, Outcome};

/// The path the MutatingWebhookConfiguration calls (istiod's too).
pub const INJECT_PATH: &str = "/inject";
/// A Pod's AdmissionReview is a few kilobytes; the apiserver itself refuses objects over 3 MiB.
const MAX_BODY: usize = 4 << 20;
/// A client that does not finish its TLS handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends no request headers in this time is closed; hyper counts idle keep-alive time too. Longer
/// than the apiserver's idle-connection timeout (90 s, Go's default, which client-go keeps), so the apiserver
/// closes idle connections first: a POST it sent on a connection pilotfish had just closed would not be retried,
/// and the pod would be refused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The serving certificate, replaceable while connections come in.
#[derive(Debug)]
pub struct Certificate(RwLock<Arc<CertifiedKey>>);

impl Certificate {
    pub fn new(key: Arc<CertifiedKey>) -> Certificate {
        Certificate(RwLock::new(key))
    }

    /// New connections get `key`; established ones keep theirs.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.0.write() {
            *current = key;
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|key| Arc::clone(&key))
    }
}

/// Serves the webhook on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    certificate: Arc<Certificate>,
    admission: Arc<Admission>,
    shutdown: impl Future<Output = ()>,
) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = match rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(builder) => builder.with_no_client_auth().with_cert_resolver(certificate),
        Err(err) => {
            // The ring provider supports the default versions; this is not expected to happen.
            warn!(error = %err, "the injection webhook cannot set up TLS");
            return;
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    info!(address = ?listener.local_addr().ok(), "serving the sidecar injection webhook (HTTPS)");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // E.g. out of file descriptors: wait a little rather than spin.
                    warn!(error = %err, "the injection webhook failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let acceptor = acceptor.clone();
        let admission = Arc::clone(&admission);
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    // A client that rejects the certificate says so with an alert: most likely the caBundle the
                    // apiserver has is not this CA (yet).
                    if err.to_string().contains("alert") {
                        warn!(%peer, error = %err, "TLS handshake on the injection webhook failed");
                    } else {
                        debug!(%peer, error = %err, "TLS handshake on the injection webhook failed");
                    }
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake on the injection webhook timed out");
                    return;
                }
            };
            let service = service_fn(move |request| {
                let admission = Arc::clone(&admission);
                async move { Ok::<_, std::convert::Infallible>(handle(request, &admission).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IDLE_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            if let Err(err) = connection.await {
                debug!(%peer, error = %err, "injection webhook connection ended with an error");
            }
        });
    }
}

async fn handle(request: Request<Incoming>, admission: &Admission) -> Response<Full<Bytes>> {
    if request.uri().path() != INJECT_PATH {
        return text(StatusCode::NOT_FOUND, format!("not found: the injection webhook answers POST {INJECT_PATH}\n"));
    }
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, format!("{INJECT_PATH} takes POST (an AdmissionReview)\n"));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return text(StatusCode::BAD_REQUEST, format!("failed to read the request body: {err}\n")),
    };
    let answer = admission.review(&body);
    match &answer.outcome {
        Outcome::Injected => info!(uid = %answer.uid, pod = %answer.pod, "sidecar injected"),
        Outcome::Unchanged(notes) => debug!(uid = %answer.uid, pod = %answer.pod, ?notes, "left unchanged"),
        Outcome::Denied(message) => warn!(uid = %answer.uid, pod = %answer.pod, %message, "admission denied"),
    }
    let body = serde_json::to_vec(&answer.review).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
