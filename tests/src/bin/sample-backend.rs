//! A sample HTTP backend for demos and examples: answers every request with its name (think "reviews-v2"), so
//! traffic shifting shows in plain `curl` output.
//!
//! Usage: sample-backend NAME ADDRESS        e.g. sample-backend v1 127.0.0.1:9101

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(name), Some(address)) = (args.next(), args.next()) else {
        eprintln!("usage: sample-backend NAME ADDRESS");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&address)?;
    eprintln!("sample-backend {name} listening on {address}");
    for stream in listener.incoming() {
        let name = name.clone();
        thread::spawn(move || {
            if let Ok(stream) = stream {
                let _ = serve(stream, &name);
            }
        });
    }
    Ok(())
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
fn serve(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((key, value)) = header.split_once(':')
                && key.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        std::io::Read::read_exact(&mut reader, &mut body)?;
        let reply = format!("{name}\n");
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-backend: {name}\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
        writer.flush()?;
    }
}
