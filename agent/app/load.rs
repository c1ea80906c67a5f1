//! Load: the configuration file read once, validated, and the cluster name resolved.

use crate::auth::AwsContext;
use crate::config::{self, ClusterNameSource, Config, ConfigErrors, Inputs};
use crate::host::{Root, procfs};
use crate::telemetry;

use super::{AppError, Outside};

/// The validation inputs for this process: environment, output override and the host name.
pub fn inputs(outside: &Outside) -> Inputs {
    let root = Root::new(&outside.host_root);
    let host_name_fallback = procfs::read_hostname(&root).unwrap_or_else(|e| {
        tracing::debug!(error = %telemetry::chain(&e), "host name unreadable; using \"localhost\"");
        "localhost".to_string()
    });
    Inputs {
        env: outside.env.clone(),
        output_override: outside.output_override.clone(),
        host_name_fallback,
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
    }
}

/// The configuration as startup loaded it, with what a reload validates against.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub cfg: Config,
    /// The inputs reloads validate with (they carry the cluster name from the EC2 tag once
    /// startup resolved it).
    pub inputs: Inputs,
    /// The file's text, read once; `None` for the embedded default.
    text: Option<String>,
}

fn read(outside: &Outside) -> Result<Option<String>, ConfigErrors> {
    let Some(path) = &outside.config_path else {
        return Ok(None);
    };
    config::read_file(path).map(Some)
}

fn validate(outside: &Outside, text: Option<&str>, inputs: &Inputs) -> Result<Config, ConfigErrors> {
    match (text, &outside.config_path) {
        (Some(text), Some(path)) => config::load_str(text, inputs).map_err(|errors| errors.in_file(path)),
        _ => config::load_str(config::DEFAULT_CONFIG, inputs),
    }
}

/// Parse and validate, strictly: a missing cluster name is an error (`config validate`,
/// `check`). The same validation startup and reload use.
pub fn load_config(outside: &Outside) -> Result<Config, ConfigErrors> {
    let text = read(outside)?;
    validate(outside, text.as_deref(), &inputs(outside))
}

/// Startup's load: the file is read once. With the `cloudwatch` output and no cluster name
/// anywhere, the config comes back with [`ClusterNameSource::Pending`]; [`resolve_cluster_name`]
/// then asks the EC2 instance tag.
pub fn load(outside: &Outside) -> Result<Loaded, ConfigErrors> {
    let text = read(outside)?;
    let mut inputs = inputs(outside);
    inputs.defer_missing_cluster_name = true;
    let cfg = validate(outside, text.as_deref(), &inputs)?;
    inputs.defer_missing_cluster_name = false;
    Ok(Loaded { cfg, inputs, text })
}

/// The cluster name from the instance tag `kubernetes.io/cluster/<name>` = `owned`, when neither
/// the config nor `K8S_CLUSTER_NAME` names the cluster (the CloudWatch agent's order), asked
/// through the agent's own identity. Re-validates the text read at load with the tag's name.
pub(super) async fn resolve_cluster_name(
    loaded: &mut Loaded,
    outside: &Outside,
    aws: Option<&AwsContext>,
) -> Result<(), AppError> {
    if loaded.cfg.cluster_name_source != ClusterNameSource::Pending {
        return Ok(());
    }
    let node = crate::auth::node_metadata(&outside.env.aws).await;
    let (name, _) =
        crate::auth::resolve_cluster_name(None, &outside.env, aws.map(|a| &a.ec2), node.instance_id.as_deref())
            .await
            .map_err(AppError::Auth)?;
    tracing::info!(cluster = %name, "cluster name from the EC2 instance tag kubernetes.io/cluster/<name>=owned");
    loaded.inputs.tagged_cluster_name = Some(name);
    loaded.cfg = validate(outside, loaded.text.as_deref(), &loaded.inputs).map_err(AppError::Config)?;
    Ok(())
}
