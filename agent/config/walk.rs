//! The hand walker over a `serde_json::Value`: typed getters that record errors with their JSON
//! path and carry on, so one pass finds every error.
//!
//! A section walker opens its object with [`Obj::object`], asks for each key once through a
//! typed getter (which also registers the key as known), and ends with [`Obj::finish`], which
//! reports every key nobody asked for as unknown, with a did-you-mean suggestion taken from the
//! keys that were asked for. A getter that finds an error records it and returns `None` (or the
//! default), so the walk always reaches the end.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::{ConfigError, ErrorKind, MAX_PRINTED};

thread_local! {
    /// While [`known_keys`] runs: every key a section defines, by its full path.
    static KNOWN_KEYS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Every key the sections walked while validating `text` define (their full paths, array items
/// as `[i]`), whether the file sets them or not: what the configuration reference must document.
/// Sections and array items the file does not contain are not walked, so `text` should contain
/// each of them once.
pub fn known_keys(text: &str, inputs: &super::Inputs) -> Vec<String> {
    KNOWN_KEYS.set(Some(Vec::new()));
    let _ = super::load_str(text, inputs);
    let mut keys = KNOWN_KEYS.take().unwrap_or_default();
    keys.sort();
    keys.dedup();
    keys
}

/// What one walk collects.
#[derive(Debug, Default)]
pub(super) struct Ctx {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
    /// `KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS` (from the environment, never from the file).
    pub allow_plain_http: bool,
}

impl Ctx {
    pub fn error(&mut self, path: impl Into<String>, kind: ErrorKind) {
        self.errors.push(ConfigError {
            path: path.into(),
            kind,
        });
    }

    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }
}

/// One JSON object being walked: its path, its keys (none when absent or of the wrong type, in
/// which case the error is already recorded) and the keys asked for so far.
#[derive(Debug)]
pub(super) struct Obj<'v> {
    path: String,
    map: Option<&'v Map<String, Value>>,
    known: Vec<&'static str>,
}

impl<'v> Obj<'v> {
    /// The document itself, which must be an object (`{}` is a valid file).
    pub fn root(cx: &mut Ctx, value: &'v Value) -> Obj<'v> {
        let map = value.as_object();
        if map.is_none() {
            cx.error(
                "",
                ErrorKind::invalid(format!(
                    "the configuration must be a JSON object, got {}",
                    type_name(value)
                )),
            );
        }
        Obj {
            path: String::new(),
            map,
            known: Vec::new(),
        }
    }

    /// The path of this object itself (`kinsight.logs.multiline[1]`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of `key` inside this object.
    pub fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`, registering the key as known. Use it for the few keys whose
    /// type rules the getters below do not cover (a nullable value, a number or a string).
    pub fn value(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.map.and_then(|m| m.get(key))
    }

    /// A nested object. Absent, it is an empty object (every key takes its default); of the
    /// wrong type, the error is recorded and the same holds.
    pub fn object(&mut self, cx: &mut Ctx, key: &'static str) -> Obj<'v> {
        let path = self.path_of(key);
        let map = match self.value(key) {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                cx.error(path.clone(), wrong_type("an object", other));
                None
            }
        };
        Obj {
            path,
            map,
            known: Vec::new(),
        }
    }

    /// An array of objects, each walked at `key[i]`. Absent, it is empty; of the wrong type, or
    /// an item that is not an object, the error is recorded and the item skipped.
    pub fn objects(&mut self, cx: &mut Ctx, key: &'static str) -> Vec<Obj<'v>> {
        let path = self.path_of(key);
        match self.value(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::Object(m) => Some(Obj {
                            path: item_path,
                            map: Some(m),
                            known: Vec::new(),
                        }),
                        other => {
                            cx.error(item_path, wrong_type("an object", other));
                            None
                        }
                    }
                })
                .collect(),
            Some(other) => {
                cx.error(path, wrong_type("an array of objects", other));
                Vec::new()
            }
        }
    }

    /// Whether the object is in the file at all (present and an object).
    pub fn is_present(&self) -> bool {
        self.map.is_some()
    }

    pub fn opt_bool(&mut self, cx: &mut Ctx, key: &'static str) -> Option<bool> {
        let path = self.path_of(key);
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                cx.error(path, wrong_type("a boolean", other));
                None
            }
        }
    }

    pub fn bool(&mut self, cx: &mut Ctx, key: &'static str, default: bool) -> bool {
        self.opt_bool(cx, key).unwrap_or(default)
    }

    /// A non-negative integer in `range`; `unit` ("seconds", "bytes" or "") goes into the
    /// out-of-range message.
    pub fn uint(&mut self, cx: &mut Ctx, key: &'static str, range: RangeInclusive<u64>, unit: &str) -> Option<u64> {
        let path = self.path_of(key);
        let value = self.value(key)?;
        let result = as_uint(value, &range, unit);
        result.map_err(|kind| cx.error(path, kind)).ok()
    }

    /// [`Obj::uint`] in seconds, as a `Duration`, `default_secs` when absent or invalid.
    pub fn secs(&mut self, cx: &mut Ctx, key: &'static str, range: RangeInclusive<u64>, default_secs: u64) -> Duration {
        Duration::from_secs(self.uint(cx, key, range, "seconds").unwrap_or(default_secs))
    }

    /// Any JSON number, as `f64`.
    pub fn number(&mut self, cx: &mut Ctx, key: &'static str) -> Option<f64> {
        let path = self.path_of(key);
        match self.value(key)? {
            Value::Number(n) => n.as_f64(),
            other => {
                cx.error(path, wrong_type("a number", other));
                None
            }
        }
    }

    pub fn str(&mut self, cx: &mut Ctx, key: &'static str) -> Option<&'v str> {
        let path = self.path_of(key);
        match self.value(key)? {
            Value::String(s) => Some(s.as_str()),
            other => {
                cx.error(path, wrong_type("a string", other));
                None
            }
        }
    }

    /// A string, checked and converted by `parse`.
    pub fn parsed<T>(
        &mut self,
        cx: &mut Ctx,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ErrorKind>,
    ) -> Option<T> {
        let path = self.path_of(key);
        let s = self.str(cx, key)?;
        parse(s).map_err(|kind| cx.error(path, kind)).ok()
    }

    /// One of a fixed set of strings.
    pub fn choice<T: Copy>(&mut self, cx: &mut Ctx, key: &'static str, choices: &[(&'static str, T)]) -> Option<T> {
        self.parsed(cx, key, |s| {
            choices
                .iter()
                .find(|(name, _)| *name == s)
                .map(|(_, v)| *v)
                .ok_or_else(|| ErrorKind::InvalidValue {
                    value: s.to_owned(),
                    allowed: choices.iter().map(|(name, _)| *name).collect(),
                })
        })
    }

    /// An array of strings, each checked by `parse`; errors name the item (`key[2]`).
    pub fn str_list<T>(
        &mut self,
        cx: &mut Ctx,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, ErrorKind>,
    ) -> Option<Vec<T>> {
        let path = self.path_of(key);
        let items = match self.value(key)? {
            Value::Array(items) => items,
            other => {
                cx.error(path, wrong_type("an array of strings", other));
                return None;
            }
        };
        let before = cx.errors.len();
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match item {
                Value::String(s) => match parse(s) {
                    Ok(v) => out.push(v),
                    Err(kind) => cx.error(item_path, kind),
                },
                other => cx.error(item_path, wrong_type("a string", other)),
            }
        }
        (cx.errors.len() == before).then_some(out)
    }

    /// A key the `CloudWatch` agent defines and kinsight accepts without using: one warning when
    /// present, whatever its value.
    pub fn ignored(&mut self, cx: &mut Ctx, key: &'static str) {
        if self.value(key).is_some() {
            cx.warn(format!(
                "{}: accepted for compatibility with the CloudWatch agent and ignored",
                self.path_of(key)
            ));
        }
    }

    /// A key (usually a section) kinsight does not implement: the warning `message` when present.
    pub fn not_implemented(&mut self, cx: &mut Ctx, key: &'static str, message: &str) {
        if self.value(key).is_some() {
            cx.warn(message);
        }
    }

    /// Reports every key that no getter asked for. Suggestions are looked for only for the first
    /// [`MAX_PRINTED`] of an object (in key order, which is the printed order): no more are
    /// printed, and a file of 100,000 unknown keys costs no 100,000 edit-distance searches.
    pub fn finish(self, cx: &mut Ctx) {
        KNOWN_KEYS.with_borrow_mut(|record| {
            if let Some(record) = record {
                record.extend(self.known.iter().map(|k| self.path_of(k)));
            }
        });
        let Some(map) = self.map else { return };
        let mut unknown = 0;
        for key in map.keys() {
            if !self.known.contains(&key.as_str()) {
                unknown += 1;
                let suggestion = if unknown <= MAX_PRINTED {
                    suggest(key, &self.known).map(str::to_owned)
                } else {
                    None
                };
                cx.error(self.path_of(key), ErrorKind::UnknownKey { suggestion });
            }
        }
    }
}

fn as_uint(value: &Value, range: &RangeInclusive<u64>, unit: &str) -> Result<u64, ErrorKind> {
    let out_of_range = |got: String| ErrorKind::OutOfRange {
        expected: describe_range(range, unit),
        got,
    };
    let Value::Number(n) = value else {
        return Err(wrong_type("an integer", value));
    };
    if let Some(u) = n.as_u64() {
        return if range.contains(&u) {
            Ok(u)
        } else {
            Err(out_of_range(u.to_string()))
        };
    }
    if n.is_i64() {
        // Negative.
        return Err(out_of_range(n.to_string()));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 => Err(out_of_range(n.to_string())),
        _ => Err(ErrorKind::WrongType {
            expected: "an integer",
            found: "a number with a fraction",
        }),
    }
}

/// `1..=172800 seconds`, or `at least 1` for a range without a practical upper bound.
fn describe_range(range: &RangeInclusive<u64>, unit: &str) -> String {
    let text = if *range.end() == u64::MAX {
        format!("at least {}", range.start())
    } else {
        format!("{}..={}", range.start(), range.end())
    };
    if unit.is_empty() {
        text
    } else {
        format!("{text} {unit}")
    }
}

pub(super) fn wrong_type(expected: &'static str, found: &Value) -> ErrorKind {
    ErrorKind::WrongType {
        expected,
        found: type_name(found),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The known key closest to `unknown`, if it is close enough to be a typo: at most one edit
/// (insertion, deletion, substitution or swap of neighbours) per three characters, and at
/// least one allowed. Compared case-insensitively, so `Debug` suggests `debug`.
pub(super) fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let unknown_lower = unknown.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::osa_distance(&unknown_lower, &k.to_lowercase()), *k))
        .filter(|(distance, k)| *distance <= (unknown.len().max(k.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn suggestions_catch_typos_and_nothing_else() {
        let known = ["metrics_collection_interval", "cluster_name", "agent", "logs"];
        assert_eq!(
            suggest("metrics_colection_interval", &known),
            Some("metrics_collection_interval")
        );
        assert_eq!(suggest("agnet", &known), Some("agent"));
        assert_eq!(suggest("log", &known), Some("logs"));
        assert_eq!(suggest("Cluster_Name", &known), Some("cluster_name"));
        assert_eq!(suggest("region", &known), None);
        assert_eq!(suggest("x", &known), None);
    }

    #[test]
    fn integers_report_range_type_and_sign() {
        let r = 1..=172_800;
        assert_eq!(as_uint(&json!(60), &r, "seconds"), Ok(60));
        assert_eq!(
            as_uint(&json!(0), &r, "seconds").unwrap_err().to_string(),
            "must be 1..=172800 seconds, got 0"
        );
        assert_eq!(
            as_uint(&json!(-5), &r, "").unwrap_err().to_string(),
            "must be 1..=172800, got -5"
        );
        assert_eq!(
            as_uint(&json!(1.5), &r, "").unwrap_err().to_string(),
            "expected an integer, got a number with a fraction"
        );
        assert_eq!(
            as_uint(&json!(1e30), &(1..=u64::MAX), "").unwrap_err().to_string(),
            "must be at least 1, got 1e+30"
        );
        assert_eq!(
            as_uint(&json!("60"), &r, "").unwrap_err().to_string(),
            "expected an integer, got a string"
        );
    }

    #[test]
    fn unknown_keys_are_reported_after_the_known_ones_are_asked() {
        let v = json!({"debug": true, "debgu": 1, "other": null});
        let mut cx = Ctx::default();
        let mut root = Obj::root(&mut cx, &v);
        assert!(root.bool(&mut cx, "debug", false));
        root.finish(&mut cx);
        let texts: Vec<String> = cx.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["debgu: unknown key; did you mean \"debug\"?", "other: unknown key"]
        );
    }

    #[test]
    fn list_items_are_checked_one_by_one() {
        let v = json!({"globs": ["a*", 3, ""]});
        let mut cx = Ctx::default();
        let mut root = Obj::root(&mut cx, &v);
        let got = root.str_list(&mut cx, "globs", |s| {
            if s.is_empty() {
                Err(ErrorKind::invalid("must not be empty"))
            } else {
                Ok(s.to_owned())
            }
        });
        assert_eq!(got, None);
        let texts: Vec<String> = cx.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "globs[1]: expected a string, got a number",
                "globs[2]: must not be empty"
            ]
        );
    }
}
