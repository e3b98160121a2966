//! Local HTTP/1.1 upstreams for Envoy to route to.
//!
//! Each backend answers every request with its own name (body and
//! `x-backend` header), so a test can tell from the reply alone where Envoy
//! sent a request, and it records what arrived, so a test can check what
//! Envoy did to the request on the way (added headers, rewritten paths...).

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};

use crate::client::header_map;

/// A request as the backend received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent on the request line.
    pub path: String,
    /// Lower-case names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

impl SeenRequest {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// How a backend answers. The default is an immediate 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Status code of every reply (100..=999).
    pub status: u16,
    /// Wait this long before answering (after recording the request), e.g.
    /// to trip a route timeout.
    pub delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self { status: 200, delay: Duration::ZERO }
    }
}

impl Behaviour {
    /// Replies with `status` instead of 200.
    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }
}

/// An HTTP/1.1 server on `127.0.0.1:<ephemeral>` (or a given address: [`Backend::start_on`]), stopped when
/// dropped.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    name: String,
    name_header: HeaderValue,
    behaviour: Mutex<(StatusCode, Duration)>,
    seen: Mutex<Vec<SeenRequest>>,
}

impl Backend {
    /// Starts a backend that answers 200 with body `name`.
    pub async fn start(name: &str) -> Result<Self> {
        Self::start_with(name, Behaviour::default()).await
    }

    /// Starts a backend that answers as `behaviour` says.
    pub async fn start_with(name: &str, behaviour: Behaviour) -> Result<Self> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("binding a backend port on 127.0.0.1")?;
        Self::serve_on(name, listener, behaviour)
    }

    /// Starts a backend that answers 200 with body `name` on a given address, for configuration with fixed
    /// ports (the examples). Fails if the address is taken; prefer [`Backend::start`] and an ephemeral port.
    pub async fn start_on(name: &str, addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding backend {name} to {addr} (is something else using that port?)"))?;
        Self::serve_on(name, listener, Behaviour::default())
    }

    fn serve_on(name: &str, listener: TcpListener, behaviour: Behaviour) -> Result<Self> {
        let name_header = HeaderValue::from_str(name)
            .with_context(|| format!("backend name {name:?} is not a valid header value"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_owned(),
            name_header,
            behaviour: Mutex::new(checked(&behaviour)?),
            seen: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(Self { addr, state, server })
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes how the backend answers from the next request on.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<()> {
        *lock(&self.state.behaviour) = checked(&behaviour)?;
        Ok(())
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.state.seen).clone()
    }

    /// Returns and forgets the requests received so far, so that a later
    /// assertion only sees what came after.
    pub fn take_requests(&self) -> Vec<SeenRequest> {
        std::mem::take(&mut *lock(&self.state.seen))
    }

    pub fn request_count(&self) -> usize {
        lock(&self.state.seen).len()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Dropping the accept loop also drops its JoinSet, which aborts the
        // keep-alive connections Envoy still holds to this backend.
        self.server.abort();
    }
}

fn checked(behaviour: &Behaviour) -> Result<(StatusCode, Duration)> {
    let status = StatusCode::from_u16(behaviour.status)
        .with_context(|| format!("{} is not an HTTP status code", behaviour.status))?;
    Ok((status, behaviour.delay))
}

/// Locks `mutex`, ignoring poisoning: the data (a log of requests, a status)
/// stays meaningful even if some test thread panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so a long test doesn't accumulate them.
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // E.g. EMFILE; back off rather than spin, the test will see
                // the failures on its own requests.
                tracing::warn!(backend = %state.name, "accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(|request| answer(Arc::clone(&state), request));
            if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(backend = %state.name, "connection ended: {error}");
            }
        });
    }
}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // A body that fails mid-way is recorded as far as it got: the request
    // still arrived, which is what most assertions are about.
    let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    lock(&state.seen).push(SeenRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.to_string(), ToString::to_string),
        headers: header_map(&parts.headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });

    let (status, delay) = *lock(&state.behaviour);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(state.name.clone())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-backend", state.name_header.clone());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{free_port, http_get};

    #[tokio::test]
    async fn start_on_serves_on_the_given_address_and_refuses_a_taken_one() -> Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let backend = Backend::start_on("fixed", addr).await?;
        assert_eq!(backend.addr(), addr);
        let reply = http_get(addr, "x", "/", &[]).await?;
        assert_eq!((reply.status, reply.body.as_str()), (200, "fixed"));
        assert_eq!(backend.request_count(), 1);
        let taken = Backend::start_on("again", addr).await.expect_err("the port is taken");
        assert!(format!("{taken:#}").contains(&addr.to_string()), "{taken:#}");
        Ok(())
    }
}
