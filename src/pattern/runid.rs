//! The run-id scanner: finds a CI run id written as `KEY=VALUE` or `KEY: VALUE`
//! anywhere in a line (`ci_run_id=`, `CI_JOB_ID=`, `BUILD_NUMBER:`, ...), for
//! events whose pattern did not capture one.
//!
//! It looks only where a value can start: at each `=` and `:` (found with
//! `memchr`), it reads the word before and compares it with the keys. Lines
//! have few of those, so this is far cheaper than matching every byte, and it
//! spares patterns an expensive "and maybe a run id somewhere after" group.

/// The keys CI systems and build scripts write a run id under (compared case-insensitively).
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

/// The first run id written as a key-value pair in `text`.
pub fn find(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    memchr::memchr2_iter(b'=', b':', bytes).find_map(|sep| {
        let before = &bytes[..key_end_before(bytes, sep)?];
        // A key counts as a whole word only: `my_run_id=` is not `run_id=`.
        let whole_key = |k: &&str| {
            ends_with_key(before, k)
                && (before.len() == k.len() || !is_word(before[before.len() - k.len() - 1]))
        };
        RUN_ID_KEYS
            .iter()
            .any(whole_key)
            .then(|| value_after(text, sep + 1))
            .flatten()
    })
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where the key before a separator ends: spaces and one closing quote (JSON) may stand between.
fn key_end_before(bytes: &[u8], sep: usize) -> Option<usize> {
    let mut end = sep;
    while end > 0 && bytes[end - 1] == b' ' {
        end -= 1;
    }
    if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    (end > 0).then_some(end)
}

fn ends_with_key(before: &[u8], key: &str) -> bool {
    before.len() >= key.len()
        && before[before.len() - key.len()..].eq_ignore_ascii_case(key.as_bytes())
}

/// After the separator: spaces, an optional opening quote, then the value
/// (`[A-Za-z0-9_.-]+`, not ending in `.`).
fn value_after(text: &str, mut i: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    while bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    let start = i;
    while bytes
        .get(i)
        .is_some_and(|b| is_word(*b) || *b == b'-' || *b == b'.')
    {
        i += 1;
    }
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
            ("at 10:00:00 x.ci_run_id = 9", Some("9")),
            ("ci_run_id :: 3", None),
        ];
        for (text, want) in cases {
            assert_eq!(find(text), want, "{text}");
        }
    }
}
