//! A deliberately dumb HTTP/1.1 client, plus polling helpers.
//!
//! Every request uses a fresh connection: a pooled client would pin requests
//! to one upstream connection and so hide exactly what the tests look at
//! (which listener, route and endpoint Envoy picks for a *new* request after a
//! config change).

use std::{collections::BTreeMap, future::Future, net::SocketAddr, time::Duration};

use anyhow::{Context, Result, anyhow};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, header::HeaderMap};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

/// Upper bound for one request, so a wedged proxy fails the test instead of
/// hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`eventually`] retries.
const RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// Lower-case names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

impl HttpReply {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// `GET http://{host}{path}` sent to `addr` over a new connection.
pub async fn http_get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Result<HttpReply> {
    http_request("GET", addr, host, path, headers, "").await
}

/// Like [`http_get`], for any method and with a request body.
pub async fn http_request(
    method: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpReply> {
    let what = format!("{method} http://{host}{path} via {addr}");
    tokio::time::timeout(REQUEST_TIMEOUT, exchange(method, addr, host, path, headers, body))
        .await
        .map_err(|_| anyhow!("{what}: no reply within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| what)
}

async fn exchange(
    method: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpReply> {
    let mut request = hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::copy_from_slice(body.as_bytes()))).context("building the request")?;

    let stream = TcpStream::connect(addr).await.context("connecting")?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;

    // The connection future does the socket I/O and has to be polled while we
    // wait for the reply. Polling it here rather than spawning it means nothing
    // outlives this call, not even when the caller's timeout cancels it.
    let reply = async move {
        let response = sender.send_request(request).await.context("sending the request")?;
        let status = response.status().as_u16();
        let headers = header_map(response.headers());
        let body = response.into_body().collect().await.context("reading the body")?.to_bytes();
        Ok(HttpReply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    };
    tokio::pin!(reply, connection);
    tokio::select! {
        biased;
        reply = &mut reply => reply,
        done = &mut connection => {
            // A peer that closes right after answering ends the connection
            // before `reply` has been polled again; the reply is complete then.
            done.context("connection failed")?;
            reply.await
        }
    }
}

/// Headers as a map of lower-case name to value, repeated headers joined.
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

/// Calls `attempt` every ~20 ms until it returns `Ok`, for at most `timeout`.
///
/// Envoy applies xDS updates asynchronously, so tests poll for the effect
/// rather than sleep. On timeout the error names `what` and carries the last
/// attempt's error, which is usually the most useful line of a failing test.
/// (For an `Option`, return `option.context("...")`.)
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut attempts = 0_u32;
    loop {
        attempts += 1;
        // An attempt that hangs must not carry us past the deadline.
        let last_error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => anyhow!("the attempt was still running at the deadline"),
        };
        if Instant::now() >= deadline {
            return Err(last_error
                .context(format!("timed out after {timeout:?} ({attempts} attempts) waiting for {what}; last error")));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Sends `n` sequential GETs and counts the replies by body.
///
/// With [`crate::Backend`]s (whose body is their name) this tells how Envoy
/// spread the traffic. Non-200 replies are counted as `"status:<code>"` and
/// requests that got no reply at all as `"error"`, so a test can assert on
/// those too instead of aborting half-way.
pub async fn count_backends(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = match http_get(addr, host, path, headers).await {
            Ok(reply) if reply.status == 200 => reply.body,
            Ok(reply) => format!("status:{}", reply.status),
            Err(error) => {
                tracing::debug!("count_backends: {error:#}");
                "error".to_owned()
            }
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}
