//! Config errors: every broken rule, each with the JSON path of the key that broke it.
//!
//! [`ConfigErrors`] is what `load_str` / `load_file` return. `Display` prints one error per line,
//! `<json.path>: <message>`, which is exactly what `kinsight config validate` prints and what the
//! golden files under `tests/fixtures/config/` hold.

use std::fmt;
use std::path::PathBuf;

/// Every error found in one file, sorted by path (stable, so errors at one path keep the order
/// in which the rules ran). Never empty when returned as an `Err`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Names `path` as the place of a malformed-JSON error (its JSON path is empty).
    #[must_use]
    pub fn in_file(mut self, path: &std::path::Path) -> Self {
        for error in &mut self.0 {
            if matches!(error.kind, ErrorKind::Malformed { .. }) {
                error.path = path.display().to_string();
            }
        }
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

/// How many errors or warnings of one load are printed or logged; the rest are counted in one
/// last line. A file of 200,000 unknown keys would otherwise print 200,000 lines at every start
/// and every reload, and the first errors are what a person fixes first anyway.
pub const MAX_PRINTED: usize = 20;

/// The longest single error line printed, in bytes: a value is echoed in its message, and a 1 MiB
/// value is no easier to read whole. A longer line keeps its start (the path, the value's
/// beginning) and its end (the rule that was broken) and drops the middle.
const MAX_LINE_BYTES: usize = 1024;

/// The first [`MAX_PRINTED`] of `items`, and how many are left out.
pub fn printed<T>(items: &[T]) -> (&[T], usize) {
    let shown = &items[..items.len().min(MAX_PRINTED)];
    (shown, items.len() - shown.len())
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, more) = printed(&self.0);
        for (i, error) in shown.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if more > 0 {
            write!(f, "\n… and {more} more errors ({} in all)", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The JSON path of the key (`logs.metrics_collected.kubernetes.cluster_name`, array items as
    /// `kinsight.logs.host_files[1]`), `env NAME` for an environment variable, the file name
    /// for malformed JSON (from `load_file`), or empty when the error concerns the whole input.
    pub path: String,
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = if self.path.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}: {}", self.path, self.kind)
        };
        if line.len() <= MAX_LINE_BYTES {
            return f.write_str(&line);
        }
        let mut head = MAX_LINE_BYTES / 2;
        while !line.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = line.len() - MAX_LINE_BYTES / 4;
        while !line.is_char_boundary(tail) {
            tail += 1;
        }
        write!(f, "{} … ({} bytes cut) … {}", &line[..head], tail - head, &line[tail..])
    }
}

impl std::error::Error for ConfigError {}

/// What is wrong at a path. Each message is one line, so that `ConfigErrors` prints one error
/// per line.
///
/// The causes (an `io::Error`, a `regex::Error`) are kept as text rather than as `#[source]`:
/// the errors are cloned into reload outcomes and compared in tests, and the message must show
/// the cause on the same line anyway (wherever an error is printed, its whole chain is).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// A key this section does not define; `suggestion` is a close known key, if any.
    #[error("unknown key{}", did_you_mean(.suggestion.as_deref()))]
    UnknownKey { suggestion: Option<String> },
    /// A key that must be present once its parent object is.
    #[error("required key is missing")]
    MissingKey,
    /// The JSON type is wrong (`expected a boolean, got a string`).
    #[error("expected {expected}, got {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// A number outside its range; `expected` reads `1..=172800 seconds` or `greater than 0`.
    #[error("must be {expected}, got {got}")]
    OutOfRange { expected: String, got: String },
    /// A string that is not one of a fixed set of values.
    #[error("invalid value {value:?}; expected one of {}", quoted_list(.allowed))]
    InvalidValue { value: String, allowed: Vec<&'static str> },
    /// The text is not JSON. `line` and `column` are 1-based, as `serde_json` reports them.
    #[error("malformed JSON at line {line}, column {column}: {msg}")]
    Malformed { line: usize, column: usize, msg: String },
    /// A pattern the `regex` crate does not compile; `msg` is its error, on one line.
    #[error("invalid regular expression {pattern:?}: {msg}")]
    InvalidRegex { pattern: String, msg: String },
    /// A file-name glob kinsight does not accept (only `*` and `?` are wildcards).
    #[error("invalid glob {glob:?}: {reason}")]
    InvalidGlob { glob: String, reason: &'static str },
    /// A path that must be absolute.
    #[error("must be an absolute path, got {value:?}")]
    NotAbsolute { value: String },
    /// The cluster name cannot be part of a `CloudWatch Logs` group name.
    #[error("invalid cluster name {value:?}: {reason}")]
    InvalidClusterName { value: String, reason: String },
    /// No cluster name in the file or the environment, and the output is `CloudWatch`.
    #[error(
        "cluster name is not set; set this key in cwagentconfig.json or the K8S_CLUSTER_NAME \
         environment variable, or run with --output stdout or --output dir:PATH for a local run"
    )]
    MissingClusterName,
    /// Any other rule about one value (a region, a role ARN, a URL, a socket address, a
    /// combination of keys); the message says what is expected.
    #[error("{message}")]
    Invalid { message: String },
    /// The file could not be read.
    #[error("cannot read {}: {message}", file.display())]
    Io { file: PathBuf, message: String },
}

impl ErrorKind {
    /// Shorthand for [`ErrorKind::Invalid`].
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        ErrorKind::Invalid {
            message: message.into(),
        }
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean {s:?}?"))
}

fn quoted_list(allowed: &[&str]) -> String {
    allowed.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &str, kind: ErrorKind) -> ConfigError {
        ConfigError {
            path: path.to_owned(),
            kind,
        }
    }

    #[test]
    fn messages_read_as_documented() {
        let cases = [
            (
                err(
                    "logs.metrics_collected.kubernetes.metrics_colection_interval",
                    ErrorKind::UnknownKey {
                        suggestion: Some("metrics_collection_interval".into()),
                    },
                ),
                "logs.metrics_collected.kubernetes.metrics_colection_interval: unknown key; \
                 did you mean \"metrics_collection_interval\"?",
            ),
            (
                err(
                    "agent.debug",
                    ErrorKind::WrongType {
                        expected: "a boolean",
                        found: "a string",
                    },
                ),
                "agent.debug: expected a boolean, got a string",
            ),
            (
                err(
                    "logs.force_flush_interval",
                    ErrorKind::OutOfRange {
                        expected: "1..=172800 seconds".into(),
                        got: "0".into(),
                    },
                ),
                "logs.force_flush_interval: must be 1..=172800 seconds, got 0",
            ),
            (
                err(
                    "kinsight.metrics.destination",
                    ErrorKind::InvalidValue {
                        value: "cloudwatch".into(),
                        allowed: vec!["put_metric_data", "emf", "both"],
                    },
                ),
                "kinsight.metrics.destination: invalid value \"cloudwatch\"; expected one of \
                 \"put_metric_data\", \"emf\", \"both\"",
            ),
            (err("x", ErrorKind::UnknownKey { suggestion: None }), "x: unknown key"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn at_most_twenty_errors_are_printed_then_a_count() {
        let errors = ConfigErrors(
            (0..200_000)
                .map(|i| err(&format!("k{i:06}"), ErrorKind::UnknownKey { suggestion: None }))
                .collect(),
        );
        let text = errors.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), MAX_PRINTED + 1);
        assert_eq!(lines[0], "k000000: unknown key");
        assert_eq!(lines[MAX_PRINTED], "… and 199980 more errors (200000 in all)");
    }

    #[test]
    fn a_huge_value_is_cut_in_its_error_line() {
        let value = "é".repeat(5_000_000);
        let e = err(
            "agent.region",
            ErrorKind::invalid(format!("invalid region {value:?}; expected letters")),
        );
        let line = e.to_string();
        assert!(line.len() < MAX_LINE_BYTES + 40, "{} bytes", line.len());
        assert!(line.starts_with("agent.region: invalid region \"éé"), "{line}");
        assert!(line.contains(" … (9999282 bytes cut) … "), "{line}");
        assert!(line.ends_with("éé\"; expected letters"), "{line}");
    }

    #[test]
    fn empty_path_prints_the_message_alone_and_errors_print_one_per_line() {
        let errors = ConfigErrors(vec![
            err(
                "",
                ErrorKind::Io {
                    file: "/nope.json".into(),
                    message: "No such file or directory (os error 2)".into(),
                },
            ),
            err("a", ErrorKind::MissingKey),
        ]);
        assert_eq!(
            errors.to_string(),
            "cannot read /nope.json: No such file or directory (os error 2)\n\
             a: required key is missing"
        );
    }
}
