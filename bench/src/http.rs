//! Just enough HTTP/1.0 to read pilotfish's admin endpoints (`/readyz`, `/metrics`).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GETs `path`; returns the status code and body.
pub async fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// The translation counters of pilotfish's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    pub translation_sum: f64,
    pub translation_count: f64,
}

pub async fn metrics(admin: SocketAddr) -> std::io::Result<Metrics> {
    let (_, body) = get(admin, "/metrics").await?;
    Ok(parse_metrics(&body))
}

fn parse_metrics(text: &str) -> Metrics {
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Metrics {
        translation_sum: value("pilotfish_translation_seconds_sum"),
        translation_count: value("pilotfish_translation_seconds_count"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_translation_histogram() {
        let text = "# HELP x\npilotfish_translation_seconds_sum 0.25\npilotfish_translation_seconds_count 5\n";
        assert_eq!(parse_metrics(text), Metrics { translation_sum: 0.25, translation_count: 5.0 });
    }
}
