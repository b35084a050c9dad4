//! Turns raw lines into records, per stream format: `text`, `json`, `cri`,
//! `docker`, or `auto` (decided from a stream's first lines).
//!
//! Empty text lines become empty records: only the multiline stage knows
//! whether one sits inside a record (between a traceback's sections) or
//! carries nothing (and drops it).
//!
//! Owns container-log reassembly (CRI `P`/`F` partials, docker json-file 16 KiB
//! splits) and every kind of bad input: invalid UTF-8 is kept lossily and
//! flagged, broken JSON becomes a text record with `fields.json_error`. It must not extract
//! meaning (levels, services): that is `pattern`'s.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::reader::RawLine;
use crate::event::{Record, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Auto,
    Text,
    Json,
    Cri,
    Docker,
}

impl FromStr for Format {
    type Err = ();
    fn from_str(s: &str) -> Result<Format, ()> {
        Ok(match s {
            "auto" => Format::Auto,
            "text" => Format::Text,
            "json" => Format::Json,
            "cri" => Format::Cri,
            "docker" => Format::Docker,
            _ => return Err(()),
        })
    }
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Text => "text",
            Format::Json => "json",
            Format::Cri => "cri",
            Format::Docker => "docker",
        }
    }

    /// Decides the format of a stream from its first complete lines: a
    /// container format or JSON only when every sampled line is one.
    pub fn detect<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Format {
        let (mut cri, mut docker, mut json, mut seen) = (true, true, true, 0);
        for line in lines
            .into_iter()
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        {
            seen += 1;
            cri &= parse_cri(line).is_ok();
            let obj = serde_json::from_slice::<Map<String, Value>>(line).ok();
            json &= obj.is_some();
            docker &= obj.is_some_and(|o| {
                o.get("log").is_some_and(Value::is_string) && o.contains_key("time")
            });
        }
        match (seen, cri, docker, json) {
            (0, ..) => Format::Text,
            (_, true, ..) => Format::Cri,
            (_, _, true, _) => Format::Docker,
            (_, _, _, true) => Format::Json,
            _ => Format::Text,
        }
    }
}

/// A container record still waiting for its final part.
#[derive(Debug)]
struct Partial {
    offset: u64,
    ts: Option<Timestamp>,
    bytes: Vec<u8>,
    truncated: bool,
}

/// Container streams (stdout, stderr) are reassembled apart: their partials interleave.
const STREAMS: [&str; 2] = ["stdout", "stderr"];

fn stream_index(stream: &str) -> usize {
    usize::from(stream == "stderr")
}

#[derive(Debug)]
pub struct Decoder {
    format: Format,
    max_line: usize,
    partials: [Option<Partial>; 2],
}

impl Decoder {
    /// A decoder for a resolved format (`Auto` must be decided before).
    pub fn new(format: Format, max_line: usize) -> Decoder {
        Decoder {
            format,
            max_line,
            partials: [None, None],
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The offset of the earliest line whose record is not out yet.
    pub fn pending_offset(&self) -> Option<u64> {
        self.partials.iter().flatten().map(|p| p.offset).min()
    }

    pub fn push(&mut self, raw: RawLine<'_>, out: &mut Vec<Record>) {
        match self.format {
            Format::Auto | Format::Text => {
                out.push(text_record(raw.bytes, raw.offset, raw.truncated))
            }
            // An empty line is no JSON record; it carries nothing.
            Format::Json if raw.bytes.is_empty() && !raw.truncated => {}
            Format::Json => out.push(json_record(raw)),
            Format::Cri => self.cri(raw, out),
            Format::Docker => self.docker(raw, out),
        }
    }

    /// The stream ended for good: partial container records go out as they are.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let mut rest: Vec<(usize, Partial)> = self
            .partials
            .iter_mut()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.take()?)))
            .collect();
        rest.sort_by_key(|(_, p)| p.offset);
        for (stream, p) in rest {
            out.push(self.complete(stream, p, true));
        }
    }

    fn cri(&mut self, raw: RawLine<'_>, out: &mut Vec<Record>) {
        match parse_cri(raw.bytes) {
            Ok(cri) => {
                let stream = stream_index(cri.stream);
                self.append(
                    stream,
                    raw.offset,
                    Timestamp::parse_rfc3339(cri.ts),
                    cri.msg,
                    raw.truncated,
                );
                if !cri.partial {
                    if let Some(p) = self.partials[stream].take() {
                        out.push(self.complete(stream, p, false));
                    }
                }
            }
            Err(problem) => {
                let mut r = text_record(raw.bytes, raw.offset, raw.truncated);
                r.fields
                    .insert("cri_error".into(), Value::String(problem.into()));
                out.push(r);
            }
        }
    }

    fn docker(&mut self, raw: RawLine<'_>, out: &mut Vec<Record>) {
        #[derive(Deserialize)]
        struct DockerLine<'a> {
            #[serde(borrow)]
            log: std::borrow::Cow<'a, str>,
            stream: Option<std::borrow::Cow<'a, str>>,
            time: Option<std::borrow::Cow<'a, str>>,
        }
        match serde_json::from_slice::<DockerLine<'_>>(raw.bytes) {
            Ok(line) => {
                let stream = stream_index(line.stream.as_deref().unwrap_or("stdout"));
                let ts = line.time.as_deref().and_then(Timestamp::parse_rfc3339);
                let (msg, done) = match line.log.strip_suffix('\n') {
                    Some(m) => (m, true),
                    None => (line.log.as_ref(), false),
                };
                self.append(stream, raw.offset, ts, msg.as_bytes(), raw.truncated);
                if done {
                    if let Some(p) = self.partials[stream].take() {
                        out.push(self.complete(stream, p, false));
                    }
                }
            }
            Err(e) => {
                let mut r = text_record(raw.bytes, raw.offset, raw.truncated);
                r.fields.insert(
                    "json_error".into(),
                    Value::String(json_problem(&e, raw.truncated)),
                );
                out.push(r);
            }
        }
    }

    fn append(
        &mut self,
        stream: usize,
        offset: u64,
        ts: Option<Timestamp>,
        msg: &[u8],
        truncated: bool,
    ) {
        let max = self.max_line;
        let p = self.partials[stream].get_or_insert_with(|| Partial {
            offset,
            ts,
            bytes: Vec::new(),
            truncated: false,
        });
        let room = max.saturating_sub(p.bytes.len());
        p.bytes.extend_from_slice(&msg[..msg.len().min(room)]);
        p.truncated |= truncated || msg.len() > room;
    }

    fn complete(&self, stream: usize, p: Partial, unfinished: bool) -> Record {
        let mut r = text_record(&p.bytes, p.offset, p.truncated);
        r.ts = p.ts;
        r.fields
            .insert("stream".into(), Value::String(STREAMS[stream].into()));
        if unfinished {
            r.fields.insert("partial".into(), Value::Bool(true));
        }
        r
    }
}

/// A line as text: lossy UTF-8 with a flag when bytes were replaced.
fn text_record(bytes: &[u8], offset: u64, truncated: bool) -> Record {
    let (line, invalid) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    };
    let mut r = Record::text(offset, line);
    if invalid {
        r.fields.insert("invalid_utf8".into(), Value::Bool(true));
    }
    if truncated {
        r.fields.insert("truncated".into(), Value::Bool(true));
    }
    r
}

fn json_record(raw: RawLine<'_>) -> Record {
    match serde_json::from_slice::<Value>(raw.bytes) {
        Ok(Value::Object(obj)) if !raw.truncated => {
            let mut r = text_record(raw.bytes, raw.offset, false);
            r.json = Some(obj);
            r
        }
        Ok(_) => {
            let mut r = text_record(raw.bytes, raw.offset, raw.truncated);
            r.fields.insert(
                "json_error".into(),
                Value::String("not a JSON object".into()),
            );
            r
        }
        Err(e) => {
            let mut r = text_record(raw.bytes, raw.offset, raw.truncated);
            r.fields.insert(
                "json_error".into(),
                Value::String(json_problem(&e, raw.truncated)),
            );
            r
        }
    }
}

fn json_problem(e: &serde_json::Error, truncated: bool) -> String {
    if truncated {
        format!("line truncated at max_line_bytes: {e}")
    } else {
        e.to_string()
    }
}

struct Cri<'a> {
    ts: &'a str,
    stream: &'a str,
    partial: bool,
    msg: &'a [u8],
}

/// `<RFC 3339 time> <stdout|stderr> <P|F>[:flags] <message>`
fn parse_cri(line: &[u8]) -> Result<Cri<'_>, &'static str> {
    const SHAPE: &str = "not a CRI log line (`<time> <stdout|stderr> <P|F> <message>`)";
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = parts
        .next()
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(SHAPE)?;
    let stream = parts
        .next()
        .and_then(|t| std::str::from_utf8(t).ok())
        .ok_or(SHAPE)?;
    let tag = parts.next().ok_or(SHAPE)?;
    let msg = parts.next().unwrap_or(b"");
    if !(stream == "stdout" || stream == "stderr")
        || ts.len() < 20
        || !ts.as_bytes()[0].is_ascii_digit()
        || ts.as_bytes().get(10) != Some(&b'T')
    {
        return Err(SHAPE);
    }
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(SHAPE),
    };
    Ok(Cri {
        ts,
        stream,
        partial,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(format: Format, lines: &[&[u8]]) -> Vec<Record> {
        let mut d = Decoder::new(format, 1024);
        let mut out = Vec::new();
        let mut offset = 0;
        for l in lines {
            d.push(
                RawLine {
                    bytes: l,
                    offset,
                    truncated: false,
                },
                &mut out,
            );
            offset += l.len() as u64 + 1;
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn cri_partials_join_per_stream() {
        let out = decode(
            Format::Cri,
            &[
                b"2024-01-01T00:00:00.000000001Z stdout P hel",
                b"2024-01-01T00:00:00.000000002Z stderr F oops",
                b"2024-01-01T00:00:00.000000003Z stdout F lo",
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].line.as_str(), out[0].fields["stream"].as_str()),
            ("oops", Some("stderr"))
        );
        assert_eq!((out[1].line.as_str(), out[1].offset), ("hello", 0));
        assert_eq!(
            out[1].ts.unwrap().to_string(),
            "2024-01-01T00:00:00.000000001Z"
        );
    }

    #[test]
    fn docker_splits_join_and_lose_their_newline() {
        let out = decode(
            Format::Docker,
            &[
                br#"{"log":"part one, ","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#,
                br#"{"log":"part two\n","stream":"stdout","time":"2024-01-01T00:00:01Z"}"#,
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "part one, part two");
    }

    #[test]
    fn broken_json_is_a_text_record_with_the_error() {
        let out = decode(
            Format::Json,
            &[br#"{"level":"info","msg":"ok"}"#, br#"{"level":"info","#],
        );
        assert!(out[0].json.is_some() && out[0].fields.is_empty());
        assert!(out[1].json.is_none());
        assert!(
            out[1].fields["json_error"]
                .as_str()
                .unwrap()
                .contains("EOF")
        );
        assert_eq!(out[1].line, r#"{"level":"info","#);
    }

    #[test]
    fn invalid_utf8_is_kept_and_flagged() {
        let out = decode(Format::Text, &[b"bad \xff byte \0 nul"]);
        assert_eq!(out[0].line, "bad \u{fffd} byte \0 nul");
        assert_eq!(out[0].fields["invalid_utf8"], Value::Bool(true));
    }

    #[test]
    fn detection_needs_every_sampled_line_to_agree() {
        let cri: &[u8] = b"2024-01-01T00:00:00Z stdout F hi";
        let docker: &[u8] = br#"{"log":"hi\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#;
        let json: &[u8] = br#"{"msg":"hi"}"#;
        let text: &[u8] = b"2024-01-01 INFO hi";
        assert_eq!(Format::detect([cri, cri]), Format::Cri);
        assert_eq!(Format::detect([docker]), Format::Docker);
        assert_eq!(Format::detect([json, json]), Format::Json);
        assert_eq!(Format::detect([json, text]), Format::Text);
    }

    #[test]
    fn joined_container_record_is_capped() {
        let mut d = Decoder::new(Format::Cri, 8);
        let mut out = Vec::new();
        d.push(
            RawLine {
                bytes: b"2024-01-01T00:00:00Z stdout P 123456",
                offset: 0,
                truncated: false,
            },
            &mut out,
        );
        d.push(
            RawLine {
                bytes: b"2024-01-01T00:00:00Z stdout F 789012",
                offset: 40,
                truncated: false,
            },
            &mut out,
        );
        assert_eq!(out[0].line, "12345678");
        assert_eq!(out[0].fields["truncated"], Value::Bool(true));
    }
}
