//! logward: a log agent for build hosts and Kubernetes pods.
//!
//! ```text
//! sources -> decode -> multiline -> extract -> correlate -> fingerprint -> window -> route -> notify
//!                                       \-> ship (file, Loki)           positions <- acknowledgements
//! sources, windows, notify -> status (snapshots) -> http (status page, /api/v1)
//! ```
//!
//! Each stage is a module that owns one thing and says what it must not do;
//! only `pipeline` wires them. Sources read and send batches with the file
//! range they cover; outputs acknowledge; `state` moves positions only then.

pub mod cli;
pub mod config;
pub mod correlate;
pub mod escalate;
pub mod escalation;
pub mod event;
pub mod fingerprint;
pub mod http;
pub mod human;
pub mod inspect;
pub mod metrics;
pub mod multiline;
pub mod notify;
pub mod pattern;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod route;
pub mod service;
pub mod ship;
pub mod silence;
pub mod source;
pub mod state;
pub mod status;
pub mod window;
