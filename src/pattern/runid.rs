//! The run-id scanner: finds a CI run id written as `KEY=VALUE` or `KEY: VALUE`
//! anywhere in a line (`ci_run_id=`, `CI_JOB_ID=`, `BUILD_NUMBER:`, ...), for
//! events whose pattern did not capture one.
//!
//! One case-insensitive Aho-Corasick pass over the line, so that patterns do
//! not each carry an expensive "and maybe a run id somewhere after" group.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// The keys CI systems and build scripts write a run id under.
pub const RUN_ID_KEYS: &[&str] = &[
    "ci_run_id",
    "ci-run-id",
    "ci.run_id",
    "run_id",
    "runid",
    "ci_job_id",
    "ci_pipeline_id",
    "build_number",
    "build_id",
    "github_run_id",
    "buildkite_build_number",
    "buildkite_build_id",
    "circle_build_num",
    "drone_build_number",
];

static KEYS: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(RUN_ID_KEYS)
        .ok()
});

/// The first run id written as a key-value pair in `text`.
pub fn find(text: &str) -> Option<&str> {
    let keys = KEYS.as_ref()?;
    let bytes = text.as_bytes();
    for m in keys.find_iter(text) {
        let word_before = m.start() > 0 && is_word(bytes[m.start() - 1]);
        if word_before {
            continue;
        }
        if let Some(value) = value_after(text, m.end()) {
            return Some(value);
        }
    }
    None
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// After a key: an optional closing quote (JSON), spaces, `=` or `:`, spaces,
/// an optional opening quote, then the value (`[A-Za-z0-9_.-]+`, not ending in `.`).
fn value_after(text: &str, at: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = at;
    let skip = |i: &mut usize, pred: fn(u8) -> bool| {
        while *i < bytes.len() && pred(bytes[*i]) {
            *i += 1;
        }
    };
    if bytes.get(i).is_some_and(|b| is_word(*b)) {
        return None;
    }
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    skip(&mut i, |b| b == b' ');
    if !matches!(bytes.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    skip(&mut i, |b| b == b' ');
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let start = i;
    skip(&mut i, |b| is_word(b) || b == b'-' || b == b'.');
    let value = text[start..i].trim_end_matches('.');
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_found_under_every_key_and_separator() {
        let cases = [
            ("connection refused ci_run_id=123456", Some("123456")),
            ("export CI_JOB_ID=4242", Some("4242")),
            ("BUILD_NUMBER: 118", Some("118")),
            (r#"{"msg":"x","ci_run_id":"77"}"#, Some("77")),
            ("run_id='abc-9' done", Some("abc-9")),
            ("GITHUB_RUN_ID=9876543210.", Some("9876543210")),
            ("my_run_id=5", None),
            ("ci_run_idx=5", None),
            ("ci_run_id is unknown", None),
            ("ci_run_id= ", None),
        ];
        for (text, want) in cases {
            assert_eq!(find(text), want, "{text}");
        }
    }
}
