//! A stand-in for Istio's Bookinfo sample, one service and version per process, with Bookinfo's call graph:
//!
//! ```text
//!   productpage ──► details
//!        └────────► reviews v1
//!                   reviews v2 (black stars) ──► ratings
//!                   reviews v3 (red stars)   ──► ratings
//! ```
//!
//! It serves Bookinfo's paths on Bookinfo's port (9080), finds the other services the way Bookinfo does (the names
//! `details`, `reviews`, `ratings`, or `DETAILS_HOSTNAME`, `DETAILS_SERVICE_PORT`, … and `SERVICES_DOMAIN`), keeps
//! Bookinfo's timeouts (productpage → details 3 s; productpage → reviews 3 s, tried twice; reviews v2 → ratings
//! 10 s, v3 → ratings 2.5 s, which is what Istio's fault-injection task relies on) and forwards the headers
//! Bookinfo forwards: `end-user` (productpage sets it from the logged-in user), `x-request-id`, the B3 and W3C
//! trace context and the other tracing headers, `user-agent`, `authorization`, `cookie`.
//!
//! What it adds: every response says who answered along the whole path. The JSON of each service has a
//! `served_by` (e.g. `reviews-v2`), the trace id it saw, and what it got from the services it called; the product
//! page prints the path as a line `path: productpage-v1 > details-v1; productpage-v1 > reviews-v2 > ratings-v1`
//! (or the error Bookinfo shows) and the trace id every hop saw.
//!
//! On SIGTERM it keeps serving for [`DRAIN`] before it exits, so that a pod being deleted or scaled away goes on
//! answering until the proxies have taken it out of their endpoints (what a preStop sleep does for apps that
//! stop at once).
//!
//! Usage: bookinfo SERVICE VERSION [ADDRESS]        e.g. bookinfo reviews v2 (listens on 0.0.0.0:9080)

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The headers Bookinfo's services pass on to the services they call (productpage.py's `getForwardHeaders`,
/// reviews' `LibertyRestEndpoint`).
const FORWARDED_HEADERS: &[&str] = &[
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "user-agent",
    "authorization",
    "jwt",
    "end-user",
];

/// How long a terminating process goes on serving.
const DRAIN: Duration = Duration::from_secs(5);

const DETAILS_UNAVAILABLE: &str = "Sorry, product details are currently unavailable for this book.";
const REVIEWS_UNAVAILABLE: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    ProductPage,
    Details,
    Reviews,
    Ratings,
}

struct App {
    service: Service,
    /// `reviews-v2`: what this process answers as.
    name: String,
    version: String,
    details: String,
    reviews: String,
    ratings: String,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(service), Some(version)) = (args.next(), args.next()) else {
        eprintln!("usage: bookinfo SERVICE VERSION [ADDRESS]   (SERVICE: productpage, details, reviews or ratings)");
        std::process::exit(2);
    };
    let address = args.next().unwrap_or_else(|| "0.0.0.0:9080".to_owned());
    let kind = match service.as_str() {
        "productpage" => Service::ProductPage,
        "details" => Service::Details,
        "reviews" => Service::Reviews,
        "ratings" => Service::Ratings,
        other => {
            eprintln!("bookinfo: unknown service {other:?} (productpage, details, reviews or ratings)");
            std::process::exit(2);
        }
    };
    if kind == Service::Reviews && !matches!(version.as_str(), "v1" | "v2" | "v3") {
        eprintln!("bookinfo: reviews comes in v1, v2 and v3, not {version:?}");
        std::process::exit(2);
    }
    let domain = std::env::var("SERVICES_DOMAIN").map(|d| format!(".{d}")).unwrap_or_default();
    let upstream = |name: &str| {
        let upper = name.to_uppercase();
        let host = std::env::var(format!("{upper}_HOSTNAME")).unwrap_or_else(|_| name.to_owned());
        let port = std::env::var(format!("{upper}_SERVICE_PORT")).unwrap_or_else(|_| "9080".to_owned());
        format!("{host}{domain}:{port}")
    };
    let app = Arc::new(App {
        service: kind,
        name: format!("{service}-{version}"),
        version,
        details: upstream("details"),
        reviews: upstream("reviews"),
        ratings: upstream("ratings"),
    });
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("bookinfo: failed to listen on {address}: {err}");
            std::process::exit(1);
        }
    };
    eprintln!("bookinfo {} listening on {address}", app.name);
    exit_after_drain_on_sigterm(app.name.clone());
    for stream in listener.incoming() {
        let app = Arc::clone(&app);
        thread::spawn(move || {
            if let Ok(stream) = stream {
                let _ = serve(stream, &app);
            }
        });
    }
}

/// Watches for SIGTERM on a thread of its own; then serves on for [`DRAIN`] and exits.
fn exit_after_drain_on_sigterm(name: String) {
    thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        runtime.block_on(async {
            let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                return;
            };
            terminate.recv().await;
            eprintln!("bookinfo {name}: SIGTERM, serving for {}s more", DRAIN.as_secs());
            tokio::time::sleep(DRAIN).await;
            std::process::exit(0);
        });
    });
}

struct Request {
    method: String,
    path: String,
    /// Lower-case names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    content_type: &'static str,
    extra_headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(status: u16, value: &Value) -> Response {
        Response { status, content_type: "application/json", extra_headers: Vec::new(), body: format!("{value}\n") }
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it or asks to.
fn serve(stream: TcpStream, app: &App) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(request) = read_request(&mut reader)? else { return Ok(()) };
        let close = request.headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let response = handle(app, &request);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-served-by: {}\r\n",
            response.status,
            reason(response.status),
            response.content_type,
            response.body.len(),
            app.name
        );
        for (name, value) in &response.extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        writer.write_all(response.body.as_bytes())?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else { return Ok(None) };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Ok(None);
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0usize);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, headers, body }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn handle(app: &App, request: &Request) -> Response {
    let path = request.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if path == "/health" {
        return Response::json(200, &json!({"status": format!("{} is healthy", app.name)}));
    }
    match (app.service, segments.as_slice()) {
        (Service::Details, ["details", id]) => details(app, request, id),
        (Service::Ratings, ["ratings", id]) => ratings(app, request, id),
        (Service::Reviews, ["reviews", id]) => reviews(app, request, id),
        (Service::ProductPage, [""]) => html(200, Vec::new(), index_page()),
        (Service::ProductPage, ["productpage"]) => product_page(app, request),
        (Service::ProductPage, ["login"]) => login(request),
        (Service::ProductPage, ["logout"]) => redirect("session=; Max-Age=0; Path=/"),
        (Service::ProductPage, ["api", "v1", "products"]) => Response::json(200, &json!([product(0)])),
        (Service::ProductPage, ["api", "v1", "products", id]) => Response::json(200, &product(id.parse().unwrap_or(0))),
        (Service::ProductPage, ["api", "v1", "products", id, "reviews"]) => {
            let (status, value) = call_reviews(app, request, id);
            Response::json(status, &value)
        }
        (Service::ProductPage, ["api", "v1", "products", id, "ratings"]) => {
            let headers = forwarded(request, user(request).as_deref());
            let (status, value) = call(&app.ratings, &format!("/ratings/{id}"), &headers, Duration::from_secs(3));
            Response::json(status, &value.unwrap_or_else(|| json!({"error": RATINGS_UNAVAILABLE})))
        }
        _ => Response::json(404, &json!({"error": format!("{} has nothing at {path}", app.name)})),
    }
}

/// What every response of this process says about who answered.
fn stamp(app: &App, request: &Request, mut value: Value) -> Value {
    value["served_by"] = app.name.clone().into();
    value["trace_id"] = trace_id(request).into();
    value
}

/// The trace id of the request: B3's `x-b3-traceid`, else W3C's `traceparent`, else Envoy's `x-request-id`.
fn trace_id(request: &Request) -> String {
    if let Some(id) = request.headers.get("x-b3-traceid") {
        return id.clone();
    }
    if let Some(id) = request.headers.get("traceparent").and_then(|t| t.split('-').nth(1)) {
        return id.to_owned();
    }
    request.headers.get("x-request-id").cloned().unwrap_or_default()
}

fn details(app: &App, request: &Request, id: &str) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return Response::json(400, &json!({"error": "please provide numeric product id"}));
    };
    let value = json!({
        "id": id, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
        "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890",
    });
    Response::json(200, &stamp(app, request, value))
}

fn ratings(app: &App, request: &Request, id: &str) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return Response::json(400, &json!({"error": "please provide numeric product ID"}));
    };
    let value = json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}});
    Response::json(200, &stamp(app, request, value))
}

fn reviews(app: &App, request: &Request, id: &str) -> Response {
    let star_color = match app.version.as_str() {
        "v2" => Some(("black", Duration::from_secs(10))),
        "v3" => Some(("red", Duration::from_millis(2500))),
        _ => None,
    };
    let texts = [
        ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
        (
            "Reviewer2",
            "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
        ),
    ];
    let mut value = json!({"id": id, "podname": hostname(), "clustername": "null", "reviews": []});
    let mut ratings_answer = Value::Null;
    let mut ratings_status = None;
    if let Some((_, timeout)) = star_color {
        let (status, answer) = call(&app.ratings, &format!("/ratings/{id}"), &forwarded(request, None), timeout);
        ratings_status = Some(status);
        ratings_answer = answer.unwrap_or(Value::Null);
    }
    let mut reviews = Vec::new();
    for (reviewer, text) in texts {
        let mut review = json!({"reviewer": reviewer, "text": text});
        if let Some((color, _)) = star_color {
            review["rating"] = match ratings_answer.get("ratings").and_then(|r| r.get(reviewer)) {
                Some(stars) if ratings_status == Some(200) => json!({"stars": stars, "color": color}),
                _ => json!({"error": RATINGS_UNAVAILABLE}),
            };
        }
        reviews.push(review);
    }
    value["reviews"] = reviews.into();
    if star_color.is_some() {
        value["ratings"] = if ratings_status == Some(200) {
            ratings_answer
        } else {
            json!({"error": RATINGS_UNAVAILABLE, "status": ratings_status})
        };
    }
    Response::json(200, &stamp(app, request, value))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// The logged-in user, from the session cookie `/login` sets (Bookinfo keeps it in its Flask session).
fn user(request: &Request) -> Option<String> {
    let cookies = request.headers.get("cookie")?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == "session")
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The headers passed on to a called service: Bookinfo's list, and `end-user` when someone is logged in.
fn forwarded(request: &Request, end_user: Option<&str>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = FORWARDED_HEADERS
        .iter()
        .filter(|name| end_user.is_none() || **name != "end-user")
        .filter_map(|name| request.headers.get(*name).map(|value| ((*name).to_owned(), value.clone())))
        .collect();
    if let Some(user) = end_user {
        headers.push(("end-user".to_owned(), user.to_owned()));
    }
    headers
}

fn call_reviews(app: &App, request: &Request, id: &str) -> (u16, Value) {
    let headers = forwarded(request, user(request).as_deref());
    // Bookinfo's productpage tries reviews twice with a 3 s timeout each, which is why a 7 s ratings delay shows
    // as unavailable reviews after about 6 s in Istio's fault-injection task.
    let mut status = 0;
    for _ in 0..2 {
        let (code, value) = call(&app.reviews, &format!("/reviews/{id}"), &headers, Duration::from_secs(3));
        status = code;
        if code == 200
            && let Some(value) = value
        {
            return (200, value);
        }
    }
    let status = if status == 0 { 500 } else { status };
    (status, json!({"error": REVIEWS_UNAVAILABLE}))
}

fn product_page(app: &App, request: &Request) -> Response {
    let user = user(request);
    let headers = forwarded(request, user.as_deref());
    let (details_status, details) = call(&app.details, "/details/0", &headers, Duration::from_secs(3));
    let details = details.filter(|_| details_status == 200);
    let (_, reviews) = call_reviews(app, request, "0");

    let mut path = Vec::new();
    let mut traces = vec![format!("{}={}", app.name, trace_id(request))];
    let mut body = String::new();
    match &details {
        Some(value) => {
            let served_by = value["served_by"].as_str().unwrap_or("?");
            path.push(format!("{} > {served_by}", app.name));
            traces.push(format!("{served_by}={}", value["trace_id"].as_str().unwrap_or("")));
            body.push_str(&format!(
                "<h4>Book Details</h4>\n<p>{} by {}, {} pages, {}</p>\n",
                value["type"].as_str().unwrap_or(""),
                value["author"].as_str().unwrap_or(""),
                value["pages"],
                value["publisher"].as_str().unwrap_or("")
            ));
        }
        None => {
            path.push(format!("{} > details: {DETAILS_UNAVAILABLE}", app.name));
            body.push_str(&format!("<h4>Error fetching product details!</h4>\n<p>{DETAILS_UNAVAILABLE}</p>\n"));
        }
    }
    match reviews.get("served_by").and_then(Value::as_str) {
        Some(served_by) => {
            traces.push(format!("{served_by}={}", reviews["trace_id"].as_str().unwrap_or("")));
            let ratings = &reviews["ratings"];
            let hop = match (ratings.get("served_by").and_then(Value::as_str), ratings.get("error")) {
                (Some(ratings_by), _) => {
                    traces.push(format!("{ratings_by}={}", ratings["trace_id"].as_str().unwrap_or("")));
                    format!("{} > {served_by} > {ratings_by}", app.name)
                }
                (None, Some(_)) => format!("{} > {served_by} > ratings: {RATINGS_UNAVAILABLE}", app.name),
                (None, None) => format!("{} > {served_by}", app.name),
            };
            path.push(hop);
            body.push_str("<h4>Book Reviews</h4>\n");
            for review in reviews["reviews"].as_array().into_iter().flatten() {
                let rating = match (review["rating"].get("stars"), review["rating"].get("error")) {
                    (Some(stars), _) => format!(
                        " <font color=\"{}\">{}</font>",
                        review["rating"]["color"].as_str().unwrap_or(""),
                        "★".repeat(stars.as_u64().unwrap_or(0) as usize)
                    ),
                    (None, Some(error)) => format!(" <p><i>{}</i></p>", error.as_str().unwrap_or("")),
                    _ => String::new(),
                };
                body.push_str(&format!(
                    "<blockquote><p>{}</p><small>{}</small>{rating}</blockquote>\n",
                    review["text"].as_str().unwrap_or(""),
                    review["reviewer"].as_str().unwrap_or("")
                ));
            }
        }
        None => {
            path.push(format!("{} > reviews: {REVIEWS_UNAVAILABLE}", app.name));
            body.push_str(&format!("<h4>Error fetching product reviews!</h4>\n<p>{REVIEWS_UNAVAILABLE}</p>\n"));
        }
    }
    let signed_in = match &user {
        Some(user) => format!("<p>Signed in as {user} (end-user: {user})</p>\n"),
        None => "<p>Not signed in</p>\n".to_owned(),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Simple Bookstore App</title></head>\n<body>\n\
         <h3>The Comedy of Errors</h3>\n{signed_in}{body}\
         <pre id=\"served-by\">\npath: {}\ntrace: {}\n</pre>\n</body>\n</html>\n",
        path.join("; "),
        traces.join(" ")
    );
    html(200, Vec::new(), page)
}

fn index_page() -> String {
    "<!DOCTYPE html>\n<html>\n<head><title>Simple Bookstore App</title></head>\n<body>\n\
     <p>Bookinfo: <a href=\"/productpage?u=normal\">Normal user</a> | <a href=\"/productpage?u=test\">Test user</a></p>\n\
     </body>\n</html>\n"
        .to_owned()
}

/// `POST /login` with the form field `username` signs in (any password, as in Bookinfo); `GET` shows the form.
fn login(request: &Request) -> Response {
    if request.method != "POST" {
        return html(
            200,
            Vec::new(),
            "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n\
             <form method=\"post\" action=\"/login\"><input name=\"username\"><input name=\"passwd\" type=\"password\">\
             <button>Sign in</button></form>\n</body></html>\n"
                .to_owned(),
        );
    }
    let form = String::from_utf8_lossy(&request.body);
    let username = form
        .split('&')
        .filter_map(|field| field.split_once('='))
        .find(|(name, _)| *name == "username")
        .map(|(_, value)| value.to_owned())
        .filter(|value| {
            !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match username {
        Some(user) => redirect(&format!("session={user}; Path=/")),
        None => html(400, Vec::new(), "<p>Sign in with a username (letters, digits, - and _)</p>\n".to_owned()),
    }
}

fn redirect(cookie: &str) -> Response {
    let headers =
        vec![("location".to_owned(), "/productpage".to_owned()), ("set-cookie".to_owned(), cookie.to_owned())];
    html(302, headers, String::new())
}

fn html(status: u16, extra_headers: Vec<(String, String)>, body: String) -> Response {
    Response { status, content_type: "text/html; charset=utf-8", extra_headers, body }
}

fn product(id: u64) -> Value {
    json!({"id": id, "title": "The Comedy of Errors", "descriptionHtml": "Wikipedia Summary: The Comedy of Errors is one of William Shakespeare's early plays."})
}

/// `GET http://AUTHORITY/PATH` with `headers`, given up after `timeout` in all (connect, send, answer): the status
/// (0 when there was no answer) and the body when it is JSON.
fn call(authority: &str, path: &str, headers: &[(String, String)], timeout: Duration) -> (u16, Option<Value>) {
    match try_call(authority, path, headers, timeout) {
        Ok((status, body)) => (status, serde_json::from_slice(&body).ok()),
        Err(err) => {
            eprintln!("bookinfo: GET http://{authority}{path} failed: {err}");
            (0, None)
        }
    }
}

fn try_call(
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    };
    let address = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{authority} has no address")))?;
    let mut stream = TcpStream::connect_timeout(&address, remaining()?)?;
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut chunk)? {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP response"))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP status"))?;
    Ok((status, answer[split + 4..].to_vec()))
}
