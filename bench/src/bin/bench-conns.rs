//! Opens N keep-alive connections to ADDR, sends one request on each, and holds them open
//! until stdin closes or SECONDS pass, so the proxy's RSS can be read with them open.
//!
//! usage: bench-conns ADDR PATH N SECONDS

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: bench-conns ADDR PATH N SECONDS");
        std::process::exit(2);
    }
    let (addr, path) = (a[1].clone(), a[2].clone());
    let n: usize = a[3].parse().expect("N");
    let secs: u64 = a[4].parse().expect("SECONDS");
    let mut held = Vec::with_capacity(n);
    let mut ok = 0;
    for _ in 0..n {
        let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
            continue;
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(k)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            if buf[..k].starts_with(b"HTTP/1.1 200") {
                ok += 1;
            }
        }
        held.push(s);
    }
    println!("open={} ok={ok}", held.len());
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
