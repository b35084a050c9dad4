//! `logward test` and `logward explain`: reports on a pattern set for the
//! people who write patterns. Formatting only; matching lives in `pattern`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event as Xml};

use crate::correlate::Sticky;
use crate::escalate::Escalator;
use crate::event::{Event, Origin, Routed, Timestamp};
use crate::fingerprint::{DEFAULT_KEYS, FingerprintInput, Fingerprinter, signature};
use crate::pattern::{PatternSet, Verdict};
use crate::route::{self, Route};
use crate::source::decode::Format;
use crate::source::{StreamConfig, StreamReader};

/// Runs every example; prints one line per failing example and the totals.
/// Returns (passed, failed).
pub fn test(
    set: &PatternSet,
    out: &mut impl Write,
    junit: Option<&Path>,
) -> io::Result<(usize, usize)> {
    let outcomes = set.run_examples();
    let mut failed = 0;
    for o in &outcomes {
        if o.problems.is_empty() {
            continue;
        }
        failed += 1;
        writeln!(
            out,
            "{}:{}: pattern `{}`: example {:?}: {}",
            o.pattern.file.display(),
            o.file_line,
            o.pattern.id,
            o.line,
            o.problems.join("; ")
        )?;
    }
    let passed = outcomes.len() - failed;
    writeln!(out, "{passed} passed, {failed} failed")?;
    if let Some(path) = junit {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        write_junit(&mut w, &outcomes, failed).map_err(io::Error::other)?;
        std::fs::write(path, w.into_inner())?;
    }
    Ok((passed, failed))
}

fn write_junit(
    w: &mut Writer<Vec<u8>>,
    outcomes: &[crate::pattern::ExampleOutcome<'_>],
    failed: usize,
) -> quick_xml::Result<()> {
    w.write_event(Xml::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let total = outcomes.len().to_string();
    let failures = failed.to_string();
    let suite = BytesStart::new("testsuite").with_attributes([
        ("name", "logward patterns"),
        ("tests", total.as_str()),
        ("failures", failures.as_str()),
    ]);
    w.write_event(Xml::Start(suite))?;
    for o in outcomes {
        let classname = o.pattern.file.display().to_string();
        let name = format!("{} (line {})", o.pattern.id, o.file_line);
        let case = BytesStart::new("testcase")
            .with_attributes([("classname", classname.as_str()), ("name", name.as_str())]);
        if o.problems.is_empty() {
            w.write_event(Xml::Empty(case))?;
            continue;
        }
        w.write_event(Xml::Start(case))?;
        let message = o.problems.join("; ");
        w.write_event(Xml::Start(
            BytesStart::new("failure").with_attributes([("message", message.as_str())]),
        ))?;
        w.write_event(Xml::Text(BytesText::new(&format!(
            "{}:{}: {:?}\n{message}",
            classname, o.file_line, o.line
        ))))?;
        w.write_event(Xml::End(BytesEnd::new("failure")))?;
        w.write_event(Xml::End(BytesEnd::new("testcase")))?;
    }
    w.write_event(Xml::End(BytesEnd::new("testsuite")))?;
    Ok(())
}

/// Shows what each stage does to one record.
/// The text is decoded and joined as the source `cfg` describes would: a
/// stack trace given on stdin is one record.
pub fn explain(
    set: &PatternSet,
    cfg: &StreamConfig,
    routes: &Arc<[Route]>,
    text: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    let format = cfg.format;
    let origin = Origin::new(cfg.source.clone(), None, Arc::default());
    let mut stream = StreamReader::new(cfg, 0, Sticky::new());
    let mut records = Vec::new();
    let mut input = text.as_bytes();
    while stream.read_chunk_upto(&mut input, &mut records, usize::MAX, Some(set))? > 0 {}
    stream.finish(&mut records, Some(set));
    let now = Timestamp::now();
    let events: Vec<Event> = records
        .into_iter()
        .map(|r| Event::from_record(r, &origin, now))
        .collect();
    let decided = stream.format().unwrap_or(format);
    writeln!(
        out,
        "decode     format {} ({}), {} record{}",
        decided.as_str(),
        if format == Format::Auto {
            "auto-detected"
        } else {
            "as asked"
        },
        events.len(),
        if events.len() == 1 { "" } else { "s" }
    )?;
    for (i, ev) in events.into_iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        explain_event(set, routes, ev, out)?;
    }
    Ok(())
}

fn explain_event(
    set: &PatternSet,
    routes: &Arc<[Route]>,
    ev: Event,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(out, "record     offset {}: {:?}", ev.offset, ev.line)?;
    if !ev.fields.is_empty() {
        writeln!(
            out,
            "           decoder fields {}",
            serde_json::Value::Object(ev.fields.clone())
        )?;
    }
    let x = set.explain(ev);
    writeln!(
        out,
        "json       {}",
        if x.json {
            "yes: JSON patterns run on the object, then regex patterns on its message"
        } else {
            "no: regex patterns run on the line"
        }
    )?;
    writeln!(
        out,
        "patterns   {} loaded, in evaluation order (priority, then load order):",
        set.len()
    )?;
    for c in &x.candidates {
        let verdict = match &c.verdict {
            Verdict::Won => "MATCHED".to_string(),
            Verdict::Outranked => "matches too, but a pattern earlier in the order won".to_string(),
            Verdict::NotForSource => "not for this source (`sources`)".to_string(),
            Verdict::NotJson => "json pattern, the record is not a JSON object".to_string(),
            Verdict::MissingKey(k) => format!("json pattern, key `{k}` is missing"),
            Verdict::NoMatch => "regex does not match".to_string(),
        };
        writeln!(
            out,
            "  {:<30} {:<28} priority {:>3}  {verdict}",
            c.id.as_ref(),
            c.location,
            c.priority
        )?;
    }
    let ev = &x.event;
    match &ev.pattern {
        Some(p) => writeln!(out, "match      `{p}`")?,
        None => writeln!(
            out,
            "match      none: the event is unmatched (matched = false); it is shipped unless ship = \"matched\" or \"none\""
        )?,
    }
    writeln!(
        out,
        "extracted  level={} service={} ci_run_id={} message={:?}",
        ev.level.map_or("null", crate::pattern::level_name),
        ev.service.as_deref().unwrap_or("null"),
        ev.ci_run_id.as_deref().unwrap_or("null"),
        ev.message.as_deref().unwrap_or_default()
    )?;
    if !ev.fields.is_empty() {
        writeln!(
            out,
            "fields     {}",
            serde_json::Value::Object(ev.fields.clone())
        )?;
    }
    writeln!(out, "ts         {}", ev.ts)?;
    let mut ev = x.event;
    explain_fingerprint(set, &mut ev, out)?;
    explain_routes(routes, &mut ev, out)?;
    let mut json = Vec::new();
    ev.write_ndjson(&mut json);
    write!(out, "event      {}", String::from_utf8_lossy(&json))
}

fn explain_fingerprint(set: &PatternSet, ev: &mut Event, out: &mut impl Write) -> io::Result<()> {
    let winner = ev
        .pattern
        .as_ref()
        .and_then(|id| set.patterns().iter().find(|p| p.id == *id));
    let keys = winner
        .map_or(&DEFAULT_KEYS.map(String::from)[..], |p| &p.fingerprint[..])
        .join(", ");
    let mut input = FingerprintInput::from_event(ev, winner.map(|p| p.fingerprint.as_slice()));
    // One record has nothing to be merged with: the template is the masked message.
    input.mine = false;
    let (template, fingerprint) = Fingerprinter::default().apply(input);
    writeln!(out, "template   {template:?}")?;
    match signature(&ev.line) {
        Some(sig) => writeln!(
            out,
            "fingerprint {:016x} of [{keys}], where the template of a stack trace is its {} exception `{}` and top frames {:?}",
            fingerprint.0,
            sig.kind.as_str(),
            sig.exception,
            sig.frames
        )?,
        None => writeln!(out, "fingerprint {:016x} of [{keys}]", fingerprint.0)?,
    }
    ev.template = Some(template);
    ev.fingerprint = Some(fingerprint);
    Ok(())
}

fn explain_routes(routes: &Arc<[Route]>, ev: &mut Event, out: &mut impl Write) -> io::Result<()> {
    if routes.is_empty() {
        return writeln!(
            out,
            "route      no [[route]] in the config: the event is only shipped"
        );
    }
    let matched: Vec<usize> = route::matching_indices(routes, ev).collect();
    if matched.is_empty() {
        return writeln!(
            out,
            "route      no route matches: the event is only shipped"
        );
    }
    ev.routed = Some(Box::new(Routed {
        routes: matched.clone(),
        context: Vec::new(),
    }));
    // The decision for this event alone, in fresh windows, at its own time.
    let mut decided = Vec::new();
    Escalator::in_memory(routes.clone())
        .observe(std::slice::from_ref(ev), None, &mut |e| decided.push(e));
    ev.routed = None;
    for r in matched {
        let route = &routes[r];
        writeln!(
            out,
            "route      `{}`: group_by [{}], window {}, threshold {}",
            route.name,
            route.group_by.join(", "),
            humantime::format_duration(route.window),
            route.threshold
        )?;
        let to: Vec<&str> = decided
            .iter()
            .filter(|e| e.route == route.name)
            .map(|e| &*e.receiver)
            .collect();
        if to.is_empty() {
            let why = if route.threshold > 1 {
                format!("counted: 1 of threshold {} in the window", route.threshold)
            } else {
                format!(
                    "held: group_wait {} gathers a burst first",
                    humantime::format_duration(route.group_wait)
                )
            };
            writeln!(out, "window     {why}")?;
        } else {
            writeln!(
                out,
                "window     first of a new group: escalated to {}",
                to.join(", ")
            )?;
        }
    }
    Ok(())
}
