//! The fingerprint stage: an event's `template` (its message with the variable
//! parts masked) and `fingerprint` (a stable 64-bit hash of the values of the
//! pattern's `fingerprint` keys), so that later stages can count and
//! deduplicate occurrences of one problem.
//!
//! - `mask`: message → template, one pass, typed placeholders;
//! - `drain`: templates → clusters with stable keys, for variable words masking
//!   cannot know (bounded, LRU, saved across restarts);
//! - `trace`: a multiline stack trace → exception type and top frames.
//!
//! This module is synchronous logic only. It must not own windows, counts or
//! routing (later stages), do I/O (the caller saves and loads the miner's
//! snapshot), or read configuration files.

pub mod drain;
pub mod mask;
pub mod trace;

pub use drain::{Mined, Miner, MinerConfig, MinerSnapshot, SavedCluster};
pub use trace::{TraceKind, TraceSignature, signature};
