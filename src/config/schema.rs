//! The JSON Schema of the config file and of pattern files (`logward config schema`), for
//! editors (Taplo, Even Better TOML) to complete and check keys while a file is written.
//!
//! Derived from the serde types users write (`*Toml`), so that a key added there is in the
//! schema; what serde cannot tell is written here: a route's `match` conditions, the two
//! shapes of `multiline`, the keys each receiver `type` takes, `tls` as a mode or a flag. The
//! schema is never stricter than the loader: it checks shapes and key names, and `logward
//! check` stays the judge of durations, regexes and references between tables.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::{ConfigToml, MultilineToml, RECEIVER_TYPES};

/// `config schema config`: the whole config file.
pub fn config() -> Value {
    let mut schema = generator().into_root_schema_for::<ConfigToml>();
    describe(
        &mut schema,
        "logward config",
        "logward's config file (docs/configuration.md). Validate with `logward check -c FILE`.",
    );
    schema.to_value()
}

/// `config schema patterns`: one pattern file, `[defs]` and `[[pattern]]` tables.
pub fn pattern_file() -> Value {
    let mut generator = generator();
    let pattern = crate::pattern::file::pattern_schema(&mut generator);
    let mut schema = json_schema!({
        "type": "object",
        "properties": {
            "defs": {
                "description": "Named regex pieces, used in `regex` as %{NAME}",
                "type": "object",
                "additionalProperties": { "type": "string" }
            },
            "pattern": {
                "description": "The patterns of the file, tried in order of priority, then of load order",
                "type": "array",
                "items": pattern
            }
        },
        "additionalProperties": false
    });
    describe(
        &mut schema,
        "logward pattern file",
        "A logward pattern file (docs/patterns.md). Check its examples with `logward test FILE`.",
    );
    let definitions = generator.take_definitions(true);
    if !definitions.is_empty() {
        schema.insert("definitions".into(), Value::Object(definitions));
    }
    schema.to_value()
}

/// Draft 7, the newest that Taplo reads; no `null` anywhere, since TOML has none.
fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with_transform(RecursiveTransform(no_null))
        .into_generator()
}

fn describe(schema: &mut Schema, title: &str, description: &str) {
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
}

/// Takes `null` out of what an `Option` allows, and out of defaults: a key is absent or has a
/// value.
fn no_null(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.get("default").is_some_and(Value::is_null) {
        obj.remove("default");
    }
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = obj.get_mut("anyOf") {
        any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
        if any.len() == 1 {
            let only = any.remove(0);
            obj.remove("anyOf");
            if let Value::Object(inner) = only {
                obj.extend(inner);
            }
        }
    }
}

/// Adds to a receiver's schema the list of `type`s and, per type, the keys it takes.
pub(super) fn receiver_types(schema: &mut Schema) {
    let types: Vec<Value> = RECEIVER_TYPES.iter().map(|(t, _)| (*t).into()).collect();
    if let Some(Value::Object(kind)) = schema.get_mut("properties").and_then(|p| p.get_mut("type"))
    {
        kind.insert("enum".into(), Value::Array(types));
    }
    let rules: Vec<Value> = RECEIVER_TYPES
        .iter()
        .map(|(name, keys)| {
            let allowed: Vec<Value> = ["type", "rate", "retry"]
                .iter()
                .chain(keys.iter())
                .map(|k| (*k).into())
                .collect();
            serde_json::json!({
                "if": { "properties": { "type": { "const": name } }, "required": ["type"] },
                "then": { "propertyNames": { "enum": allowed } }
            })
        })
        .collect();
    schema.insert("allOf".into(), Value::Array(rules));
}

/// A route's `match` (and an inhibit rule's `source`/`target`): event keys to conditions.
pub(super) struct Conditions;

impl JsonSchema for Conditions {
    fn schema_name() -> Cow<'static, str> {
        "Conditions".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Event keys (level, service, pattern, ci_run_id, source, path, message, fingerprint, or a field or label) to conditions: \"value\", \"~regex\", \">=warn\" (level), a glob (pattern), a list of values, or true/false (present/absent). docs/routing.md",
            "type": "object",
            "additionalProperties": {
                "anyOf": [
                    { "type": "string" },
                    { "type": "boolean" },
                    { "type": "integer" },
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": { "type": ["string", "integer"] }
                    }
                ]
            }
        })
    }
}

/// One `inhibit` rule of a route.
pub(super) struct InhibitRule;

impl JsonSchema for InhibitRule {
    fn schema_name() -> Cow<'static, str> {
        "InhibitRule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let conditions = generator.subschema_for::<Conditions>();
        json_schema!({
            "description": "While a group matching `source` is live, events matching `target` (with the same `equal` keys) are not notified",
            "type": "object",
            "properties": {
                "source": conditions,
                "target": conditions,
                "equal": { "type": "array", "items": { "type": "string" } }
            },
            "required": ["source", "target"],
            "additionalProperties": false
        })
    }
}

/// A receiver's `tls`: a mode for `email`, a flag for `nats`.
pub(super) struct Tls;

impl JsonSchema for Tls {
    fn schema_name() -> Cow<'static, str> {
        "Tls".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "email: \"starttls\", \"tls\" or \"none\"; nats: true to require TLS",
            "anyOf": [
                { "enum": ["starttls", "tls", "none"] },
                { "type": "boolean" }
            ]
        })
    }
}

impl JsonSchema for MultilineToml {
    fn schema_name() -> Cow<'static, str> {
        "Multiline".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rule = generator.subschema_for::<super::MultilineRuleToml>();
        json_schema!({
            "description": "\"auto\" (built-in stack-trace rules), \"none\", or a rule table with exactly one of `start` and `continue`",
            "anyOf": [{ "enum": ["auto", "none"] }, rule]
        })
    }
}
