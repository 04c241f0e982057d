//! The `stackcore` server binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stackcore::{
    Pace, ResolverConfig, Server, Source, Stack, SyntheticConfig, WebSocketConfig,
    YellowstoneConfig,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core streaming engine for Solana data, wire-compatible with HyperStack.
#[derive(Parser, Debug)]
#[command(name = "stackcore", version, about)]
struct Cli {
    /// Stack file (`*.stack.json`). Default: the embedded demo stack.
    #[arg(long)]
    stack: Option<PathBuf>,
    /// Where updates come from: `synthetic`, `yellowstone` (YELLOWSTONE_ENDPOINT) or `replay:FILE`.
    #[arg(long, default_value = "synthetic")]
    source: String,
    /// Synthetic chain rate, updates per second (0 = as fast as possible).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Synthetic chain seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay pace for `--source replay:FILE`.
    #[arg(long, default_value = "recorded", value_parser = ["recorded", "fast"])]
    pace: String,
    /// Append every raw upstream update to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// WebSocket bind address.
    #[arg(long, default_value = "[::]:8877")]
    bind: SocketAddr,
    /// HTTP health bind address.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_bind: SocketAddr,
    /// VM worker threads (default: from the cores available).
    #[arg(long)]
    workers: Option<usize>,
    /// WebSocket reactor threads (default: from the cores available).
    #[arg(long)]
    reactors: Option<usize>,
    /// Pin workers and reactors to cores.
    #[arg(long)]
    pin: bool,
    /// Yellowstone endpoint (for `--source yellowstone`).
    #[arg(long, env = "YELLOWSTONE_ENDPOINT")]
    endpoint: Option<String>,
    /// Yellowstone x-token (also YELLOWSTONE_X_TOKEN).
    #[arg(long, env = "YELLOWSTONE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run events through a stack file offline and print or check the mutations and frames.
    Replay(stackcore::replay::ReplayArgs),
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(Command::Replay(args)) = cli.command {
        let code = stackcore::replay::run(args, &mut std::io::stdout(), &mut std::io::stderr());
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // Held to the end of `main`: the OTLP exporter's guard with feature `otel`, unit without.
    #[allow(clippy::let_unit_value)]
    let _telemetry = init_tracing();
    let stack_bytes = match &cli.stack {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return fail(format!("cannot read stack file {}: {e}", path.display())),
        },
        None => stackcore::stacks::LAUNCHPAD.as_bytes().to_vec(),
    };
    let stack = match Stack::from_json(&stack_bytes) {
        Ok(s) => s,
        Err(e) => return fail(format!("invalid stack file: {e}")),
    };
    let token = cli
        .token
        .clone()
        .or_else(|| std::env::var("YELLOWSTONE_X_TOKEN").ok());
    let source = match cli.source.as_str() {
        "synthetic" => {
            let mut synthetic = SyntheticConfig::new(cli.seed);
            synthetic.updates_per_sec = cli.rate;
            Source::Synthetic(synthetic)
        }
        "yellowstone" => {
            let Some(endpoint) = cli.endpoint.clone() else {
                return fail(
                    "--source yellowstone needs --endpoint or YELLOWSTONE_ENDPOINT".into(),
                );
            };
            let mut y = YellowstoneConfig::new(endpoint);
            y.x_token = token;
            Source::Yellowstone(y)
        }
        other => match other.strip_prefix("replay:") {
            Some(path) => Source::Replay {
                path: PathBuf::from(path),
                pace: if cli.pace == "fast" {
                    Pace::AsFastAsPossible
                } else {
                    Pace::Recorded
                },
            },
            None => {
                return fail(format!(
                    "unknown --source `{other}` (synthetic, yellowstone or replay:FILE)"
                ))
            }
        },
    };
    let mut builder = Server::builder()
        .spec(stack)
        // HYPERSTACK_WS_* limits (README "Limits"); --bind sets the address on top.
        .websocket_config(WebSocketConfig::from_env())
        .bind(cli.bind)
        .health_monitoring()
        .health_bind(cli.health_bind)
        .reconnection()
        .source(source)
        .resolver_config(ResolverConfig::from_env())
        .pin(cli.pin);
    if let Some(n) = cli.workers {
        builder = builder.workers(n);
    }
    if let Some(n) = cli.reactors {
        builder = builder.reactors(n);
    }
    if let Some(path) = cli.record {
        builder = builder.record(path);
    }
    match builder.start() {
        Ok(handle) => {
            #[cfg(feature = "otel")]
            if let Some(t) = &_telemetry {
                t.export_metrics(handle.metrics().clone());
            }
            tracing::info!(
                websocket = ?handle.websocket_addr(),
                http = ?handle.http_addr(),
                "stackcore running"
            );
            handle.join();
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

fn fail(msg: String) -> ExitCode {
    eprintln!("stackcore: {msg}");
    ExitCode::from(2)
}

#[cfg(feature = "otel")]
type TelemetryGuard = Option<stackcore::telemetry::Telemetry>;
#[cfg(not(feature = "otel"))]
type TelemetryGuard = ();

/// `RUST_LOG` filter (default info), `JSON_LOGS=true` for JSON lines, and OTLP with feature `otel`.
fn init_tracing() -> TelemetryGuard {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("JSON_LOGS")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false);
    let fmt_layer = if json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt_layer);
    #[cfg(feature = "otel")]
    {
        match stackcore::telemetry::Telemetry::init() {
            Ok((telemetry, layer)) => {
                registry.with(layer).init();
                Some(telemetry)
            }
            Err(e) => {
                registry.init();
                tracing::warn!(error = %e, "OTLP export disabled");
                None
            }
        }
    }
    #[cfg(not(feature = "otel"))]
    registry.init()
}
