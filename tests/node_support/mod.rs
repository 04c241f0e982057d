//! The real TypeScript client (`tests/node/client.mjs` over the npm `hyperstack-typescript`
//! package) for interop tests, shared by the root package's and `stackcore-io`'s tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `tests/node`, found from whichever package's tests include this file.
pub fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("tests/node"))
        .find(|d| d.join("install.sh").exists())
        .expect("tests/node in the workspace")
}

/// Installs tests/node's packages once (tests/node/install.sh serializes concurrent callers).
pub fn ensure_npm_install() {
    let ok = Command::new("bash")
        .arg(node_dir().join("install.sh"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tests/node/install.sh failed (needs node, npm and flock)"
    );
}

/// Starts the client against `url` with its `HS_*` settings; its JSON report comes on stdout.
pub fn node_client(url: &str, settings: &[(&str, &str)]) -> Child {
    let mut c = Command::new("node");
    c.arg(node_dir().join("client.mjs")).arg(url);
    for (k, v) in settings {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node on PATH")
}
