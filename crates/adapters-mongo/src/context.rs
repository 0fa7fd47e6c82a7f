//! Untrusted JSON (an event's context, a set-aside event) as BSON, in a
//! lossless escaped form.
//!
//! MongoDB cannot hold every JSON document as it is: a key may not contain a
//! NUL byte, keys that start with `$` or contain `.` are refused or
//! misread by queries and updates, documents nest at most 100 levels deep,
//! and BSON has no unsigned 64-bit integer. The escaped form:
//!
//! - **Keys:** `%` becomes `%25`, `.` becomes `%2E`, NUL becomes `%00`, and a
//!   leading `$` becomes `%24`. Every other character is kept, so ordinary
//!   keys read the same in the database as in the source.
//! - **Integers** above `i64::MAX` become `{"%u64": "<decimal>"}`; every
//!   other integer is an `Int64`, every fraction a `Double`.
//! - **Nesting** past [`MAX_CONTEXT_DEPTH`] levels becomes
//!   `{"%json": "<the JSON text of the value>"}`.
//!
//! An escaped key never starts with a `%` that is not followed by two hex
//! digits, so `%u64` and `%json` cannot be mistaken for a source's keys, and
//! decoding gives back exactly the JSON that was encoded.

use mongodb::bson::{Bson, Document};
use serde_json::{Map, Number, Value};

use crate::error::Failure;

/// The deepest nesting of objects and arrays kept as BSON documents inside
/// an event's context; deeper values are kept as JSON text.
///
/// MongoDB refuses documents nested more than 100 levels; the record and the
/// set-aside document wrap the value in two levels of their own, and the
/// margin keeps the form well clear of the limit on every server version.
pub const MAX_CONTEXT_DEPTH: usize = 64;

/// The largest document MongoDB stores, in bytes (its `maxBsonObjectSize`).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// The marker key of an integer above `i64::MAX`.
const U64_MARKER: &str = "%u64";

/// The marker key of a value nested too deep, kept as JSON text.
const JSON_MARKER: &str = "%json";

/// Returns `value` in the escaped form.
pub(crate) fn encode(value: &Value) -> Bson {
    encode_at(value, 0)
}

fn encode_at(value: &Value, depth: usize) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(flag) => Bson::Boolean(*flag),
        Value::Number(number) => encode_number(number),
        Value::String(text) => Bson::String(text.clone()),
        Value::Array(_) | Value::Object(_) if depth >= MAX_CONTEXT_DEPTH => {
            let mut marker = Document::new();
            marker.insert(JSON_MARKER, value.to_string());
            Bson::Document(marker)
        }
        Value::Array(items) => {
            Bson::Array(items.iter().map(|item| encode_at(item, depth + 1)).collect())
        }
        Value::Object(map) => Bson::Document(
            map.iter().map(|(key, item)| (escape_key(key), encode_at(item, depth + 1))).collect(),
        ),
    }
}

fn encode_number(number: &Number) -> Bson {
    if let Some(integer) = number.as_i64() {
        Bson::Int64(integer)
    } else if let Some(unsigned) = number.as_u64() {
        let mut marker = Document::new();
        marker.insert(U64_MARKER, unsigned.to_string());
        Bson::Document(marker)
    } else {
        // JSON has no NaN or infinity, so every other number is a finite f64.
        Bson::Double(number.as_f64().unwrap_or_default())
    }
}

/// Returns `key` escaped: `%`, `.` and NUL everywhere and `$` at the start.
pub(crate) fn escape_key(key: &str) -> String {
    let mut escaped = String::with_capacity(key.len());
    for (index, c) in key.char_indices() {
        match c {
            '%' => escaped.push_str("%25"),
            '.' => escaped.push_str("%2E"),
            '\0' => escaped.push_str("%00"),
            '$' if index == 0 => escaped.push_str("%24"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Returns the key `escaped` stood for.
///
/// # Errors
/// [`Failure::Corrupt`] when a `%` is not followed by two hex digits.
pub(crate) fn unescape_key(escaped: &str) -> Result<String, Failure> {
    if !escaped.contains('%') {
        return Ok(escaped.to_owned());
    }
    let mut key = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        key.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(u8::is_ascii)
            .ok_or_else(|| {
                Failure::corrupt("context", format!("key `{escaped}` has a bad `%` escape"))
            })?;
        key.push(char::from(code));
        rest = &rest[at + 3..];
    }
    key.push_str(rest);
    Ok(key)
}

/// Returns the JSON value `bson` holds in the escaped form.
///
/// # Errors
/// [`Failure::Corrupt`] when `bson` is not in the escaped form: a BSON type
/// JSON has no counterpart for, a bad key escape, or a bad marker.
pub(crate) fn decode(bson: &Bson) -> Result<Value, Failure> {
    Ok(match bson {
        Bson::Null => Value::Null,
        Bson::Boolean(flag) => Value::Bool(*flag),
        Bson::Int32(integer) => Value::from(*integer),
        Bson::Int64(integer) => Value::from(*integer),
        Bson::Double(fraction) => Number::from_f64(*fraction).map_or(Value::Null, Value::Number),
        Bson::String(text) => Value::String(text.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(decode).collect::<Result<_, _>>()?),
        Bson::Document(document) => decode_document(document)?,
        other => {
            return Err(Failure::corrupt(
                "context",
                format!("BSON {:?} has no JSON counterpart", other.element_type()),
            ));
        }
    })
}

fn decode_document(document: &Document) -> Result<Value, Failure> {
    if document.len() == 1 {
        if let Ok(text) = document.get_str(U64_MARKER) {
            let unsigned: u64 = text.parse().map_err(|error| Failure::corrupt("context", error))?;
            return Ok(Value::from(unsigned));
        }
        if let Ok(text) = document.get_str(JSON_MARKER) {
            return serde_json::from_str(text).map_err(|error| Failure::corrupt("context", error));
        }
    }
    let mut map = Map::new();
    for (key, item) in document {
        map.insert(unescape_key(key)?, decode(item)?);
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;
    use serde_json::json;

    use super::*;

    fn round_trip(value: &Value) -> Value {
        // Through the bytes MongoDB would store, not only the tree.
        let mut wrapper = Document::new();
        wrapper.insert("context", encode(value));
        let bytes = mongodb::bson::serialize_to_vec(&wrapper).unwrap();
        let stored: Document = mongodb::bson::deserialize_from_slice(&bytes).unwrap();
        decode(stored.get("context").unwrap()).unwrap()
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!("bottom"), |inner, _| json!({ "a": inner }))
    }

    #[test]
    fn ordinary_context_is_stored_as_it_is() {
        let value = json!({ "geo": { "lat": 0.1 }, "args": ["/a"], "n": 3, "ok": true, "x": null });

        let encoded = encode(&value);

        let expected = doc! {
            "geo": { "lat": 0.1 }, "args": ["/a"], "n": 3_i64, "ok": true, "x": Bson::Null,
        };
        assert_eq!(encoded, Bson::Document(expected));
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn awkward_keys_are_escaped_and_read_back() {
        let value = json!({
            "$where": 1, "a.b": 2, "nul\u{0}key": 3, "100%": 4, "%2E": 5, "mid$dle": 6,
            "$": { "$$": { "..": 7 } }, "%u64": "8", "%json": "9", "": 10,
        });

        let Bson::Document(encoded) = encode(&value) else { panic!("not a document") };

        let mut keys: Vec<&str> = encoded.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "",
                "%24",
                "%24where",
                "%252E",
                "%25json",
                "%25u64",
                "100%25",
                "a%2Eb",
                "mid$dle",
                "nul%00key"
            ]
        );
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn every_escaped_key_is_safe_for_mongodb() {
        for key in ["$set", "a.b.c", "\u{0}", "$.%\u{0}$"] {
            let escaped = escape_key(key);

            assert!(!escaped.starts_with('$') && !escaped.contains(['.', '\0']), "{escaped}");
            assert_eq!(unescape_key(&escaped).unwrap(), key);
        }
    }

    #[test]
    fn bad_escape_is_corrupt_when_decoded() {
        for bad in ["%", "%4", "%zz", "%ff", "a%2"] {
            assert!(unescape_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_keep_their_exact_values() {
        let value = json!([
            0,
            -1,
            9_007_199_254_740_993_i64,
            i64::MIN,
            i64::MAX,
            u64::MAX,
            1.5,
            -0.0,
            1e-7,
            1.0,
            f64::MAX
        ]);

        assert_eq!(round_trip(&value), value);
        let Bson::Array(items) = encode(&value) else { panic!("not an array") };
        assert_eq!(items[5], Bson::Document(doc! { "%u64": "18446744073709551615" }));
    }

    #[test]
    fn deep_nesting_is_kept_as_text_below_the_limit() {
        let value = nested(MAX_CONTEXT_DEPTH + 30);

        let encoded = encode(&value);

        let mut level = &encoded;
        let mut depth = 0;
        while let Bson::Document(document) = level {
            match document.get("a") {
                Some(inner) => level = inner,
                None => {
                    assert!(document.get_str("%json").unwrap().starts_with("{\"a\":"));
                    break;
                }
            }
            depth += 1;
        }
        assert_eq!(depth, MAX_CONTEXT_DEPTH);
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn nesting_at_the_limit_stays_documents() {
        let value = nested(MAX_CONTEXT_DEPTH);

        let text = format!("{:?}", encode(&value));

        assert!(!text.contains("%json"), "{text}");
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn text_with_nul_and_odd_characters_reads_back() {
        let value = json!({ "path": "a\u{0}b \u{202e} 🚀 \"q\" \\", "list": [[], {}, ""] });

        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn bson_without_a_json_counterpart_is_corrupt() {
        let stored = Bson::ObjectId(mongodb::bson::oid::ObjectId::new());

        assert!(decode(&stored).is_err());
    }
}
