//! The binary with no arguments serves the embedded demo stack from the synthetic chain, answers its
//! health endpoints, accepts a WebSocket, and exits 0 promptly on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((status, body))
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn binary_runs_on_defaults_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("stackcore-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_stackcore"))
        .current_dir(&dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut child = Kill(child);

    // /health answers 200 once the server is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        if let Some(r) = http_get(8081, "/health") {
            break r;
        }
        assert!(Instant::now() < deadline, "no /health on 8081");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(health, (200, r#"{"status":"ok"}"#.to_string()));

    // /ready is valid JSON matching its status; the synthetic chain makes it ready soon.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(8081, "/ready").expect("/ready answers");
        let v: serde_json::Value = serde_json::from_str(&body).expect("/ready is JSON");
        assert_eq!(v["ready"].as_bool(), Some(status == 200), "{status} {body}");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A WebSocket handshake completes on 8877 and a subscription gets frames.
    let stream = TcpStream::connect(("127.0.0.1", 8877)).expect("websocket port open");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (mut ws, response) =
        tungstenite::client("ws://127.0.0.1:8877/", stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws.send(tungstenite::Message::text(
        r#"{"type":"subscribe","view":"Token/list"}"#,
    ))
    .unwrap();
    let first = ws.read().expect("a frame after subscribing");
    assert!(first.is_binary(), "data frames are binary: {first:?}");
    // Live frames from the synthetic chain arrive through the real gRPC path.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let msg = ws.read().expect("frames keep coming");
        let bytes = msg.into_data();
        if bytes.first() != Some(&0x1f) {
            let frame: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON frame");
            if frame["op"] == "patch" {
                assert_eq!(frame["entity"], "Token/list");
                assert!(frame["seq"].is_string(), "{frame}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "no live patch within 10 s");
    }
    drop(ws);

    // SIGTERM: exit 0 within 2 s.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running 2 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
