//! A Loki push receiver that counts, for `scripts/bench-e2e --loki`: it takes
//! `POST /loki/api/v1/push` (snappy-compressed protobuf, or JSON), decodes every entry
//! (with its own copy of the `logproto` schema), answers 204, and reports on `GET /count`:
//! `entries requests body_bytes line_bytes`. It stores nothing, so it keeps up with the agent.
//!
//! ```sh
//! cargo run --release --example loki_sink -- 127.0.0.1:3100
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
}

/// `line` is a `string` in the schema; as `bytes`, decoding from a `Bytes` buffer slices it
/// instead of copying it, which keeps the receiver well ahead of the agent.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryAdapter {
    #[prost(bytes = "bytes", tag = "2")]
    line: prost::bytes::Bytes,
}

#[derive(Default)]
struct Counts {
    entries: AtomicU64,
    requests: AtomicU64,
    body_bytes: AtomicU64,
    line_bytes: AtomicU64,
}

/// Entries and line bytes of a push body, or why it is not one.
fn count(headers: &HeaderMap, body: &[u8]) -> Result<(u64, u64), String> {
    let json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let lines: Vec<usize> = if json {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        v["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["values"].as_array().into_iter().flatten())
            .map(|e| e[1].as_str().map_or(0, str::len))
            .collect()
    } else {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| e.to_string())?;
        let req = PushRequest::decode(prost::bytes::Bytes::from(raw)).map_err(|e| e.to_string())?;
        req.streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| e.line.len()))
            .collect()
    };
    Ok((lines.len() as u64, lines.iter().sum::<usize>() as u64))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3100".into());
    let counts = Arc::new(Counts::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let push = {
            let counts = counts.clone();
            move |headers: HeaderMap, body: Bytes| {
                let counts = counts.clone();
                async move {
                    match count(&headers, &body) {
                        Ok((entries, line_bytes)) => {
                            counts.entries.fetch_add(entries, Ordering::Relaxed);
                            counts.requests.fetch_add(1, Ordering::Relaxed);
                            counts
                                .body_bytes
                                .fetch_add(body.len() as u64, Ordering::Relaxed);
                            counts.line_bytes.fetch_add(line_bytes, Ordering::Relaxed);
                            (StatusCode::NO_CONTENT, String::new())
                        }
                        Err(e) => (StatusCode::BAD_REQUEST, e),
                    }
                }
            }
        };
        let report = move || {
            let c = counts.clone();
            async move {
                format!(
                    "{} {} {} {}\n",
                    c.entries.load(Ordering::Relaxed),
                    c.requests.load(Ordering::Relaxed),
                    c.body_bytes.load(Ordering::Relaxed),
                    c.line_bytes.load(Ordering::Relaxed)
                )
            }
        };
        let app = axum::Router::new()
            .route("/loki/api/v1/push", post(push))
            .route("/count", get(report));
        axum::serve(listener, app).await
    })
}
