//! The Yellowstone gRPC client: connect, subscribe, read, reconnect.
//!
//! One attempt: connect (TLS for `https://`, HTTP/2 keep-alive), send the subscription derived
//! from the stack (with `from_slot` when resuming), then read messages until the stream ends,
//! errors, stalls for `stall_timeout`, or ingest shuts down. Server pings are answered with a
//! request that carries only `ping`: Yellowstone answers any request with `ping` set by a pong
//! and leaves the filters as they are, while any other request replaces all filters (an empty
//! one would unsubscribe from everything).
//!
//! Between attempts the [`Backoff`] decides the wait; what the health monitor shows:
//! `Connected` on the first message of a stream, `Reconnecting` after a transient loss, `Error`
//! when the upstream refuses the token (kept until a connection succeeds, so `/ready` stays 503)
//! or when `max_attempts` is exhausted (then the client stops).

use std::collections::HashMap;
use std::time::Instant;

use stackcore_engine::Pubkey;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use yellowstone_grpc_proto::geyser::geyser_client::GeyserClient;
use yellowstone_grpc_proto::geyser::{
    CommitmentLevel, SubscribeRequest, SubscribeRequestFilterAccounts, SubscribeRequestFilterSlots,
    SubscribeRequestFilterTransactions, SubscribeRequestPing,
};

use super::resume::Backoff;
use super::{unix_nanos, Handled, IngestLimits, Pipeline, Stop};
use crate::config::{Commitment, ReconnectionConfig};

/// Where and how to connect.
pub(crate) struct ClientParams {
    pub endpoint: String,
    pub x_token: Option<String>,
    pub commitment: Commitment,
    pub program_ids: Vec<Pubkey>,
    pub reconnection: ReconnectionConfig,
    pub limits: IngestLimits,
}

/// The subscription for a stack: accounts owned by its programs, successful non-vote
/// transactions mentioning them, and slots at the commitment.
pub fn subscribe_request(
    program_ids: &[Pubkey],
    commitment: Commitment,
    from_slot: Option<u64>,
) -> SubscribeRequest {
    let ids: Vec<String> = program_ids
        .iter()
        .map(|p| bs58::encode(p).into_string())
        .collect();
    let level = match commitment {
        Commitment::Processed => CommitmentLevel::Processed,
        Commitment::Confirmed => CommitmentLevel::Confirmed,
        Commitment::Finalized => CommitmentLevel::Finalized,
    };
    SubscribeRequest {
        accounts: HashMap::from([(
            "stack".to_string(),
            SubscribeRequestFilterAccounts {
                owner: ids.clone(),
                ..Default::default()
            },
        )]),
        transactions: HashMap::from([(
            "stack".to_string(),
            SubscribeRequestFilterTransactions {
                vote: Some(false),
                failed: Some(false),
                account_include: ids,
                ..Default::default()
            },
        )]),
        slots: HashMap::from([(
            "stack".to_string(),
            SubscribeRequestFilterSlots {
                filter_by_commitment: Some(true),
                ..Default::default()
            },
        )]),
        commitment: Some(level as i32),
        from_slot,
        ..Default::default()
    }
}

/// The answer to a server ping: only `ping`, so the filters stay.
pub fn ping_request(id: i32) -> SubscribeRequest {
    SubscribeRequest {
        ping: Some(SubscribeRequestPing { id }),
        ..Default::default()
    }
}

enum End {
    Shutdown,
    Transient(String),
    Auth(String),
    /// The server cannot resume from the requested slot.
    Gap(String),
    Fatal(String),
}

fn classify(status: Status) -> End {
    let what = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => End::Auth(what),
        Code::OutOfRange => End::Gap(what),
        _ => End::Transient(what),
    }
}

/// Runs until shutdown, the sink closing, or `max_attempts` exhausted.
pub(crate) async fn run(p: ClientParams, pipe: &mut Pipeline, stop: &Stop) {
    let mut backoff = Backoff::new(p.reconnection, p.limits.healthy_after);
    let mut first = true;
    loop {
        if stop.is_set() {
            return;
        }
        if !first {
            crate::metrics::Metrics::add(&pipe.metrics.reconnects_total, 1);
        }
        first = false;
        let (established, end) = attempt(&p, pipe, stop).await;
        let last = match end {
            End::Shutdown => return,
            End::Fatal(msg) => {
                tracing::error!("upstream: {msg}");
                pipe.health.record_fatal(msg);
                return;
            }
            End::Auth(msg) => {
                let msg = format!(
                    "upstream {} refused the x-token ({msg}); check YELLOWSTONE_X_TOKEN",
                    p.endpoint
                );
                tracing::error!("{msg}");
                pipe.health.record_fatal(msg.clone());
                msg
            }
            End::Gap(msg) => {
                let msg = format!("upstream cannot resume from slot {:?} ({msg}); resubscribing live, updates in between are lost", pipe.resume.from_slot());
                tracing::error!("{msg}");
                pipe.resume.forget();
                pipe.health.record_error(msg.clone());
                pipe.health.record_reconnecting();
                msg
            }
            End::Transient(msg) => {
                tracing::warn!(endpoint = %p.endpoint, "upstream: {msg}");
                pipe.health.record_error(msg.clone());
                if !matches!(pipe.health.status(), crate::health::StreamStatus::Error(_))
                    || established.is_some()
                {
                    pipe.health.record_reconnecting();
                }
                msg
            }
        };
        match backoff.attempt_ended(established, Instant::now()) {
            None => {
                let msg = format!(
                    "gave up after {} failed attempts; last: {last}",
                    backoff.failures()
                );
                tracing::error!("upstream: {msg}");
                pipe.health.record_fatal(msg);
                return;
            }
            Some(delay) => {
                tracing::info!(?delay, from_slot = ?pipe.resume.from_slot(), "reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait() => return,
                }
            }
        }
    }
}

async fn connect(p: &ClientParams) -> Result<Channel, End> {
    let l = &p.limits;
    let mut ep = Endpoint::from_shared(p.endpoint.clone())
        .map_err(|e| End::Fatal(format!("bad endpoint `{}`: {e}", p.endpoint)))?
        .connect_timeout(l.connect_timeout)
        .tcp_nodelay(true)
        .initial_stream_window_size(l.stream_window)
        .initial_connection_window_size(l.connection_window);
    if let Some(d) = p.reconnection.http2_keep_alive_interval {
        ep = ep
            .http2_keep_alive_interval(d)
            .keep_alive_timeout(l.keep_alive_timeout)
            .keep_alive_while_idle(true);
    }
    if p.endpoint.starts_with("https://") {
        ep = ep
            .tls_config(ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| End::Fatal(format!("TLS setup for `{}`: {e}", p.endpoint)))?;
    }
    ep.connect()
        .await
        .map_err(|e| End::Transient(format!("connect {}: {e}", p.endpoint)))
}

/// One connection. Returns when the first message arrived (if one did) and why it ended.
async fn attempt(p: &ClientParams, pipe: &mut Pipeline, stop: &Stop) -> (Option<Instant>, End) {
    let channel = tokio::select! {
        c = connect(p) => match c {
            Ok(c) => c,
            Err(end) => return (None, end),
        },
        _ = stop.wait() => return (None, End::Shutdown),
    };
    let mut client = GeyserClient::new(channel)
        .max_decoding_message_size(p.limits.max_message_size)
        .max_encoding_message_size(p.limits.max_message_size);
    let from_slot = pipe.resume.from_slot();
    let (req_tx, req_rx) = mpsc::channel(8);
    let _ = req_tx.try_send(subscribe_request(&p.program_ids, p.commitment, from_slot));
    let mut request = tonic::Request::new(ReceiverStream::new(req_rx));
    if let Some(token) = &p.x_token {
        match MetadataValue::try_from(token.as_str()) {
            Ok(v) => {
                request.metadata_mut().insert("x-token", v);
            }
            Err(_) => {
                return (
                    None,
                    End::Fatal("the x-token is not a valid header value".into()),
                )
            }
        }
    }
    let subscribed = tokio::select! {
        r = client.subscribe(request) => r,
        _ = stop.wait() => return (None, End::Shutdown),
        _ = tokio::time::sleep(p.limits.connect_timeout) => {
            return (None, End::Transient(format!("no answer to Subscribe within {:?}", p.limits.connect_timeout)));
        }
    };
    let mut stream = match subscribed {
        Ok(r) => r.into_inner(),
        Err(status) => return (None, classify(status)),
    };
    if from_slot.is_some() {
        pipe.resumed();
    }
    let mut established = None;
    let mut ping_id = 0i32;
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = stop.wait() => return (established, End::Shutdown),
            _ = tokio::time::sleep(p.limits.stall_timeout) => {
                return (established, End::Transient(format!("no message for {:?}", p.limits.stall_timeout)));
            }
        };
        match msg {
            Ok(Some(update)) => {
                if established.is_none() {
                    established = Some(Instant::now());
                    pipe.health.record_connection();
                    tracing::info!(endpoint = %p.endpoint, ?from_slot, "upstream connected");
                }
                match pipe.handle(&update, unix_nanos()) {
                    Ok(Handled::Ping) => {
                        ping_id = ping_id.wrapping_add(1);
                        let _ = req_tx.try_send(ping_request(ping_id));
                    }
                    Ok(_) => {}
                    Err(_) => return (established, End::Shutdown),
                }
            }
            Ok(None) => {
                return (
                    established,
                    End::Transient("stream ended by the server".into()),
                )
            }
            Err(status) => return (established, classify(status)),
        }
    }
}
