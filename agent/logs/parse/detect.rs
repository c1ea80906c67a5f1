//! Per-file format detection: CRI or Docker `json-file`.
//!
//! Kubelet decides a file's format from its first line, trying CRI first and Docker JSON second
//! (`getParseFunc` in `kubernetes/kubernetes: pkg/kubelet/kuberuntime/logs/logs.go`). This does the
//! same, except that a line neither format accepts does not fail the file: it is reported as
//! unparsed (the caller ships it raw) and detection is tried again on the next line. Once a line
//! parsed, the format is fixed for the file, so a later line is only tried against that format.

use std::fmt;

use super::cri::{CriError, parse_cri};
use super::docker::{DockerError, parse_docker};
use super::line::Line;

/// The on-disk format of a container log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `<timestamp> <stream> <tags> <content>` (containerd, CRI-O).
    Cri,
    /// One JSON object per line (Docker's `json-file` driver).
    Docker,
}

impl Format {
    /// A short name for logs and telemetry labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cri => "cri",
            Format::Docker => "docker",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line could not be parsed; the line is then shipped raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The file is CRI and this line is not.
    Cri(CriError),
    /// The file is Docker JSON and this line is not.
    Docker(DockerError),
    /// The format is not known yet and the line is neither.
    Undetected {
        /// What the CRI parser said.
        cri: CriError,
        /// What the Docker parser said.
        docker: DockerError,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Cri(e) => e.fmt(f),
            LineError::Docker(e) => e.fmt(f),
            LineError::Undetected { cri, docker } => {
                write!(f, "line is neither CRI nor Docker JSON ({cri}; {docker})")
            }
        }
    }
}

impl std::error::Error for LineError {}

/// The per-file line parser: detects the format on the first line that parses, then keeps it.
#[derive(Debug, Clone, Default)]
pub struct LineParser {
    format: Option<Format>,
}

impl LineParser {
    /// A parser for a file whose format is not known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser for a file whose format is already known (for instance carried over a rotation).
    pub fn with_format(format: Format) -> Self {
        Self { format: Some(format) }
    }

    /// The detected format, once a line parsed.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// Parses one complete line (without its `\n`). `scratch` is the reusable decode buffer of
    /// [`parse_docker`]; the result borrows from `line` and `scratch`.
    pub fn parse<'a>(&mut self, line: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Line<'a>, LineError> {
        match self.format {
            Some(Format::Cri) => parse_cri(line).map_err(LineError::Cri),
            Some(Format::Docker) => parse_docker(line, scratch).map_err(LineError::Docker),
            None => {
                let cri = match parse_cri(line) {
                    Ok(parsed) => {
                        self.format = Some(Format::Cri);
                        return Ok(parsed);
                    }
                    Err(e) => e,
                };
                match parse_docker(line, scratch) {
                    Ok(parsed) => {
                        self.format = Some(Format::Docker);
                        Ok(parsed)
                    }
                    Err(docker) => Err(LineError::Undetected { cri, docker }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::line::Stream;
    use super::*;

    #[test]
    fn detects_cri_and_keeps_it() {
        let mut p = LineParser::new();
        let mut buf = Vec::new();
        assert_eq!(p.format(), None);
        let l = p.parse(b"2026-01-05T10:11:12Z stdout F hello", &mut buf).unwrap();
        assert_eq!(l.content, b"hello");
        assert_eq!(p.format(), Some(Format::Cri));
        // A Docker line in a CRI file is an error, not a switch of format.
        let docker = br#"{"log":"x\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#;
        assert!(matches!(
            p.parse(docker, &mut buf),
            Err(LineError::Cri(CriError::MissingFields))
        ));
        assert_eq!(p.format(), Some(Format::Cri));
    }

    #[test]
    fn detects_docker_t2() {
        let lines: [&[u8]; 3] = [
            br#"{"log":"first half ","stream":"stdout","time":"2026-01-05T10:11:14.123456789Z"}"#,
            br#"{"log":"err\n","stream":"stderr","time":"2026-01-05T10:11:14.2Z"}"#,
            br#"{"log":"second half\n","stream":"stdout","time":"2026-01-05T10:11:14.3Z"}"#,
        ];
        let mut p = LineParser::new();
        let mut buf = Vec::new();
        let l = p.parse(lines[0], &mut buf).unwrap();
        assert!(l.partial);
        assert_eq!(p.format(), Some(Format::Docker));
        let l = p.parse(lines[1], &mut buf).unwrap();
        assert_eq!((l.stream, l.content), (Stream::Stderr, &b"err\n"[..]));
        assert!(matches!(
            p.parse(b"2026-01-05T10:11:12Z stdout F x", &mut buf),
            Err(LineError::Docker(_))
        ));
    }

    #[test]
    fn undetected_lines_retry_detection() {
        let mut p = LineParser::new();
        let mut buf = Vec::new();
        let e = p.parse(b"garbage before the first real line", &mut buf).unwrap_err();
        assert!(matches!(
            e,
            LineError::Undetected {
                cri: CriError::Timestamp(_),
                docker: DockerError::Syntax(0)
            }
        ));
        assert!(e.to_string().contains("neither"));
        assert!(p.parse(b"", &mut buf).is_err());
        assert_eq!(p.format(), None);
        assert!(p.parse(b"2026-01-05T10:11:12Z stderr P x", &mut buf).is_ok());
        assert_eq!(p.format(), Some(Format::Cri));
    }

    #[test]
    fn preset_format() {
        let mut p = LineParser::with_format(Format::Docker);
        let mut buf = Vec::new();
        assert!(p.parse(b"2026-01-05T10:11:12Z stdout F x", &mut buf).is_err());
        assert_eq!(p.format(), Some(Format::Docker));
        assert_eq!(Format::Cri.to_string(), "cri");
    }
}
