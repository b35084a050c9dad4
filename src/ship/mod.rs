//! Shipping: where events go once processed. `[output.file]` (NDJSON) today;
//! Grafana Loki plugs in beside it. An output acknowledges a batch only when
//! it holds it durably enough to survive the agent's death.

pub mod file;
