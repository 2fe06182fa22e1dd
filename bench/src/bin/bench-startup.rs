//! Measures start-up to listening: spawns the given command and polls ADDR until it accepts,
//! printing the elapsed milliseconds; then stops the child.
//!
//! usage: bench-startup ADDR -- COMMAND [ARGS...]

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 || a[2] != "--" {
        eprintln!("usage: bench-startup ADDR -- COMMAND [ARGS...]");
        std::process::exit(2);
    }
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&a[3])
        .args(&a[4..])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    loop {
        if tokio::net::TcpStream::connect(&a[1]).await.is_ok() {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            eprintln!("did not listen within 10 s");
            let _ = child.kill().await;
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!("{:.2}", started.elapsed().as_secs_f64() * 1000.0);
    let _ = child.kill().await;
}
