//! A local HTTP server standing in for Slack's incoming webhook and other webhook receivers:
//! records the path and JSON body of every POST and answers 200.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// The server; it runs until the test process ends.
#[derive(Debug)]
pub struct HookServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    got: Received,
}

impl HookServer {
    /// Listen on a free port.
    pub fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let got: Received = Arc::default();
        let g = Arc::clone(&got);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let g = Arc::clone(&g);
                std::thread::spawn(move || handle(s, &g));
            }
        });
        Self { base, got }
    }

    /// The bodies posted to `path` so far, in order.
    pub fn on(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn handle(s: TcpStream, got: &Received) {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok();
    got.lock()
        .unwrap()
        .push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    let mut s = s;
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}
