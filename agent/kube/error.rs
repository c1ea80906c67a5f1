use std::path::{Path, PathBuf};

/// A Kubernetes resource quantity (`100m`, `128Mi`, `1e3`) that does not follow the grammar of
/// `k8s.io/apimachinery/pkg/api/resource/quantity.go`. The field is treated as unset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("no digits in the number part")]
    NoDigits,
    #[error("unknown suffix {0:?} (expected one of n u m k M G T P E Ki Mi Gi Ti Pi Ei, or an exponent e<n>)")]
    Suffix(String),
    #[error("exponent out of range")]
    Exponent,
}

/// A pod list that cannot be used at all. A list whose individual pods are broken is not an
/// error: those pods are skipped with a [`crate::kube::Warning`] each.
#[derive(Debug, thiserror::Error)]
pub enum PodListError {
    #[error("cannot read pod list {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}not valid JSON at line {line}, column {column}", at(path.as_deref()))]
    Json {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}not UTF-8 text", at(path.as_deref()))]
    NotUtf8 { path: Option<PathBuf> },
    #[error(
        "{}{found}; expected what `kubectl get pods -o json` prints (a PodList or List with `items`), \
         one Pod, or a JSON array of pods",
        at(path.as_deref())
    )]
    Shape { path: Option<PathBuf>, found: String },
}

fn at(path: Option<&Path>) -> String {
    path.map(|p| format!("pod list {}: ", p.display())).unwrap_or_default()
}

impl PodListError {
    /// The same error, naming the file it came from.
    #[must_use]
    pub fn with_path(self, file: &Path) -> PodListError {
        let file = Some(file.to_path_buf());
        match self {
            PodListError::Json {
                line, column, source, ..
            } => PodListError::Json {
                path: file,
                line,
                column,
                source,
            },
            PodListError::NotUtf8 { .. } => PodListError::NotUtf8 { path: file },
            PodListError::Shape { found, .. } => PodListError::Shape { path: file, found },
            read @ PodListError::Read { .. } => read,
        }
    }

    /// A short, bounded label for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            PodListError::Read { .. } => "read_failed",
            PodListError::Json { .. } | PodListError::NotUtf8 { .. } | PodListError::Shape { .. } => "invalid",
        }
    }
}
