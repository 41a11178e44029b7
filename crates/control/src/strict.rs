//! JSON read strictly: like [`serde_json::Value`], except that an object naming the same key
//! twice is an error naming that key and where it is (serde_json silently keeps the last one,
//! so `{"method":"clear","method":"version"}` would run `version`).

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a text is not a strict JSON value.
#[derive(Debug)]
pub enum StrictError {
    /// Not JSON at all (syntax, end of input, nesting too deep, ...).
    Json(serde_json::Error),
    /// A repeated key, by its path from the top: `method`, `params.service.port`, `[0].id`.
    Duplicate(String),
}

/// Path components longer than this are cut in messages (a key can be megabytes long).
const MAX_SHOWN: usize = 64;

/// Parse `text` as one JSON value, refusing repeated keys in any object.
pub fn parse(text: &[u8]) -> Result<Value, StrictError> {
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = Seed { ctx: &ctx }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match (parsed, ctx.duplicate.into_inner()) {
        (_, Some(path)) => Err(StrictError::Duplicate(path)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(StrictError::Json(e)),
    }
}

#[derive(Default)]
struct Ctx {
    /// The path to the value being read.
    path: RefCell<Vec<String>>,
    /// The first repeated key found, by path.
    duplicate: RefCell<Option<String>>,
}

impl Ctx {
    fn shown(&self, last: &str) -> String {
        let mut out = String::new();
        let path = self.path.borrow();
        for part in path.iter().map(String::as_str).chain([last]) {
            if !out.is_empty() && !part.starts_with('[') {
                out.push('.');
            }
            match part.char_indices().nth(MAX_SHOWN) {
                Some((cut, _)) => {
                    out.push_str(&part[..cut]);
                    out.push_str("...");
                }
                None => out.push_str(part),
            }
        }
        out
    }

    fn within<T>(&self, part: String, f: impl FnOnce() -> T) -> T {
        self.path.borrow_mut().push(part);
        let out = f();
        self.path.borrow_mut().pop();
        out
    }
}

#[derive(Clone, Copy)]
struct Seed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let next = self
                .ctx
                .within(format!("[{}]", out.len()), || seq.next_element_seed(self))?;
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                *self.ctx.duplicate.borrow_mut() = Some(self.ctx.shown(&key));
                return Err(de::Error::custom("duplicate key"));
            }
            let v = self.ctx.within(key.clone(), || map.next_value_seed(self))?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(text: &str) -> String {
        match parse(text.as_bytes()) {
            Err(StrictError::Duplicate(p)) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":18446744073709551615}"#,
            r#"  [ ]  "#,
            r#""\u00e9\n""#,
            "-9223372036854775808",
            "1e300",
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse(text.as_bytes()).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_is_named_with_its_path() {
        assert_eq!(dup(r#"{"method":"clear","method":"version"}"#), "method");
        assert_eq!(
            dup(r#"{"params":{"service":{"port":1,"port":2}}}"#),
            "params.service.port"
        );
        assert_eq!(dup(r#"[{"id":1},{"id":1,"id":2}]"#), "[1].id");
        assert_eq!(dup(r#"{"a":[[{"k":0,"k":0}]]}"#), "a[0][0].k");
        // Escapes are resolved before comparing: "\u0061" is "a".
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#), "a");
        let long = "k".repeat(1000);
        let p = dup(&format!(r#"{{"{long}":1,"{long}":2}}"#));
        assert_eq!(p, format!("{}...", "k".repeat(MAX_SHOWN)));
        // The same key in sibling objects is fine.
        assert!(parse(br#"{"a":{"k":1},"b":{"k":1}}"#).is_ok());
    }

    #[test]
    fn syntax_errors_stay_json_errors() {
        for text in ["", "{", "{\"a\":1}x", "[1,]", "\u{0}", "nul"] {
            assert!(
                matches!(parse(text.as_bytes()), Err(StrictError::Json(_))),
                "{text:?}"
            );
        }
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(deep.as_bytes()), Err(StrictError::Json(_))));
        assert!(matches!(parse(b"\xff\xfe"), Err(StrictError::Json(_))));
    }
}
