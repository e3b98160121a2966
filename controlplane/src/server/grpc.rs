//! The two ADS methods over HTTP/2, with responses framed here instead of by tonic's encoder.
//!
//! tonic's encoder keeps one buffer per stream as large as the largest response it has sent (the whole CDS, for a
//! proxy with every cluster), and encodes every proxy's copy of the same resources anew. Here a response body is
//! a queue of shared chunks (see [`super::wire`]): a stream holds only references to what the snapshot holds.
//! Requests are still decoded by tonic.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;

use super::AdsService;
use super::wire;

/// Requests (a proxy's first one carries its node) may be large; responses have no limit.
const MAX_REQUEST_SIZE: usize = 64 << 20;

const SOTW_PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Chunks smaller than this are joined into data frames of up to this size.
///
/// h2 keeps a slot per queued data frame in a per-connection slab that never shrinks: a frame per resource entry
/// (thousands per response, hundreds of bytes each) would leave every connection holding a slab sized for its
/// largest response. Joined frames are copies, but short-lived ones: each is freed once written.
const FRAME_SIZE: usize = 16 * 1024;

/// What a stream's task queues for its response body: one message's chunks, or the status that ends the stream.
pub(super) type Queued = Result<Vec<Bytes>, Status>;

/// Routes the ADS methods to their stream tasks.
#[derive(Clone, Debug)]
pub(super) struct AdsRoutes {
    service: AdsService,
}

impl AdsRoutes {
    pub(super) fn new(service: AdsService) -> AdsRoutes {
        AdsRoutes { service }
    }
}

impl NamedService for AdsRoutes {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl tonic::codegen::Service<http::Request<Body>> for AdsRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = match request.uri().path() {
            SOTW_PATH => self.respond::<wire::Sotw>(request),
            DELTA_PATH => self.respond::<wire::Delta>(request),
            _ => Status::unimplemented("pilotfish serves only the aggregated (ADS) methods").into_http(),
        };
        ready(Ok(response))
    }
}

impl AdsRoutes {
    fn respond<W: wire::Wire>(&self, request: http::Request<Body>) -> http::Response<Body> {
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(tonic::transport::server::TcpConnectInfo::remote_addr);
        let inbound = tonic::codec::Streaming::new_request(
            tonic_prost::ProstDecoder::<W::Request>::default(),
            request.into_body(),
            None,
            Some(MAX_REQUEST_SIZE),
        );
        let responses = self.service.start::<W>(peer, inbound);
        let mut response = http::Response::new(Body::new(ResponseBody::new(responses)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        response
    }
}

/// A response body: the queued messages' chunks as data frames, then the gRPC status as trailers.
struct ResponseBody {
    queue: mpsc::Receiver<Queued>,
    /// Chunks of the message being sent.
    pending: std::vec::IntoIter<Bytes>,
    /// Set once the trailers are out.
    finished: bool,
}

impl ResponseBody {
    fn new(queue: mpsc::Receiver<Queued>) -> ResponseBody {
        ResponseBody { queue, pending: Vec::new().into_iter(), finished: false }
    }

    /// The next data frame of the current message: a large chunk as it is, small ones joined up to [`FRAME_SIZE`].
    fn next_data(&mut self) -> Option<Bytes> {
        let mut joined_len = 0;
        let joined = self
            .pending
            .as_slice()
            .iter()
            .take_while(|chunk| {
                joined_len += chunk.len();
                joined_len <= FRAME_SIZE
            })
            .count();
        if joined <= 1 {
            return self.pending.next();
        }
        let mut frame = BytesMut::with_capacity(FRAME_SIZE.min(joined_len));
        for chunk in self.pending.by_ref().take(joined) {
            frame.extend_from_slice(&chunk);
        }
        Some(frame.freeze())
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let body = self.get_mut();
        if let Some(chunk) = body.next_data() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if body.finished {
            return Poll::Ready(None);
        }
        let status = loop {
            match std::task::ready!(body.queue.poll_recv(context)) {
                Some(Ok(chunks)) => {
                    body.pending = chunks.into_iter();
                    if let Some(chunk) = body.next_data() {
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                }
                Some(Err(status)) => break status,
                // The stream's task has ended (the proxy closed its side, or shutdown).
                None => break Status::ok(""),
            }
        };
        body.finished = true;
        body.queue.close();
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.pending.len() == 0
    }
}

/// `grpc-status` and, for an error, `grpc-message`.
fn trailers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if status.add_header(&mut headers).is_err() {
        // Only a message that cannot be a header value fails: the code alone still ends the stream right.
        headers.clear();
        headers.insert("grpc-status", HeaderValue::from(i32::from(status.code())));
    }
    headers
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    async fn next_frame(body: &mut ResponseBody) -> Option<Frame<Bytes>> {
        std::future::poll_fn(|context| Pin::new(&mut *body).poll_frame(context))
            .await
            .map(|frame| frame.expect("the body never fails"))
    }

    #[tokio::test]
    async fn queued_chunks_go_out_in_order_then_the_status() {
        let (queue, receiver) = mpsc::channel(4);
        let mut body = ResponseBody::new(receiver);
        let chunks = vec![Bytes::from_static(b"head"), Bytes::from_static(b"entry")];
        queue.send(Ok(chunks)).await.expect("the body is listening");
        queue.send(Ok(vec![Bytes::from_static(b"next")])).await.expect("the body is listening");
        drop(queue);
        let mut data = Vec::new();
        let trailers = loop {
            let frame = next_frame(&mut body).await.expect("trailers end the body");
            match frame.into_data() {
                Ok(chunk) => data.push(chunk),
                Err(frame) => break frame.into_trailers().expect("a frame is data or trailers"),
            }
        };
        // A message's small chunks go out as one frame; messages are never joined.
        assert_eq!(data, [&b"headentry"[..], b"next"]);
        assert_eq!(trailers.get("grpc-status").map(HeaderValue::as_bytes), Some(&b"0"[..]));
        assert!(body.is_end_stream());
        assert!(next_frame(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn small_chunks_are_joined_and_large_ones_go_as_they_are() {
        let (queue, receiver) = mpsc::channel(4);
        let mut body = ResponseBody::new(receiver);
        let small = Bytes::from(vec![1_u8; 1000]);
        let large = Bytes::from(vec![2_u8; FRAME_SIZE + 1]);
        let mut chunks = vec![small.clone(); 20];
        chunks.push(large.clone());
        chunks.push(small.clone());
        let sent: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.iter().copied()).collect();
        queue.send(Ok(chunks)).await.expect("the body is listening");
        drop(queue);
        let mut frames = Vec::new();
        while let Some(frame) = next_frame(&mut body).await {
            if let Ok(data) = frame.into_data() {
                frames.push(data);
            }
        }
        let sizes: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [16_000, 4_000, FRAME_SIZE + 1, 1000]);
        // The large chunk is the very same buffer, not a copy.
        assert_eq!(frames[2].as_ptr(), large.as_ptr());
        let received: Vec<u8> = frames.iter().flat_map(|frame| frame.iter().copied()).collect();
        assert_eq!(received, sent);
    }

    #[tokio::test]
    async fn an_error_ends_the_body_with_its_status() {
        let (queue, receiver) = mpsc::channel(4);
        let mut body = ResponseBody::new(receiver);
        queue.send(Err(Status::invalid_argument("no node"))).await.expect("the body is listening");
        let trailers = next_frame(&mut body)
            .await
            .and_then(|frame| frame.into_trailers().ok())
            .expect("the error comes as trailers");
        assert_eq!(trailers.get("grpc-status").map(HeaderValue::as_bytes), Some(&b"3"[..]));
        assert_eq!(trailers.get("grpc-message").map(HeaderValue::as_bytes), Some(&b"no%20node"[..]));
        assert!(next_frame(&mut body).await.is_none());
    }
}
