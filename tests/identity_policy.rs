//! Every AWS operation kinsight's code calls is allowed by `manifests/iam-policy.json`
//! (issue #4 item 6), and the policy allows nothing broader than its
//! purpose. The source is scanned for the fluent method of every operation of the SDK clients
//! kinsight links; an operation found there but missing from [`USED`] fails the test, so a new
//! AWS call cannot land without its IAM review.

use std::path::{Path, PathBuf};

use serde_json::Value;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const CLUSTER: &str = "test-cluster";

/// One AWS call kinsight makes: the SDK method (or a marker for calls made by credential
/// providers or by hand), the IAM action, and what it is checked against.
struct Used {
    /// A string whose presence in `agent/` means the call is made.
    marker: &'static str,
    action: &'static str,
    check: Check,
}

enum Check {
    /// An identity-policy action on these resources, with these condition keys.
    Allowed {
        resources: &'static [&'static str],
        namespace: Option<&'static str>,
    },
    /// Needed only by a feature the operator may leave off: granted by
    /// `manifests/iam-policy-optional.json`, never by the required policy.
    Optional { resources: &'static [&'static str] },
    /// No identity-policy permission: the role's trust policy (IRSA), no permission at all
    /// (`GetCallerIdentity`), or the base role's own policy (`agent.credentials.role_arn`).
    NotInThisPolicy(&'static str),
}

const GROUP_ARN: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/containerinsights/test-cluster/application";
const STREAM_ARN: &str =
    "arn:aws:logs:us-east-1:123456789012:log-group:/aws/containerinsights/test-cluster/application:log-stream:node-1";

/// The single list of AWS calls kinsight makes.
const USED: &[Used] = &[
    Used {
        marker: ".put_metric_data()",
        action: "cloudwatch:PutMetricData",
        check: Check::Allowed {
            resources: &["*"],
            namespace: Some("ContainerInsights"),
        },
    },
    Used {
        marker: "CHECK_NAMESPACE",
        action: "cloudwatch:PutMetricData",
        check: Check::Allowed {
            resources: &["*"],
            namespace: Some("ContainerInsights/kinsight-check"),
        },
    },
    Used {
        marker: ".create_log_group()",
        action: "logs:CreateLogGroup",
        check: Check::Allowed {
            resources: &[GROUP_ARN],
            namespace: None,
        },
    },
    Used {
        marker: ".create_log_stream()",
        action: "logs:CreateLogStream",
        check: Check::Allowed {
            resources: &[GROUP_ARN],
            namespace: None,
        },
    },
    Used {
        marker: ".put_log_events()",
        action: "logs:PutLogEvents",
        check: Check::Allowed {
            resources: &[STREAM_ARN, GROUP_ARN],
            namespace: None,
        },
    },
    // Only with a retention configured (`kinsight.logs.retention_days`, `retention_in_days`).
    Used {
        marker: ".put_retention_policy()",
        action: "logs:PutRetentionPolicy",
        check: Check::Optional {
            resources: &[GROUP_ARN],
        },
    },
    // The cluster name from the instance tag (agent/auth/ec2.rs), only when no cluster name is
    // configured. DescribeTags supports no resource-level permissions or condition keys: IAM
    // only accepts `*` for it.
    Used {
        marker: "Action=DescribeTags",
        action: "ec2:DescribeTags",
        check: Check::Optional { resources: &["*"] },
    },
    Used {
        marker: ".get_caller_identity()",
        action: "sts:GetCallerIdentity",
        check: Check::NotInThisPolicy("needs no permission"),
    },
    Used {
        marker: "WebIdentityTokenCredentialsProvider",
        action: "sts:AssumeRoleWithWebIdentity",
        check: Check::NotInThisPolicy("the role's trust policy (IRSA)"),
    },
    Used {
        marker: "AssumeRoleProvider",
        action: "sts:AssumeRole",
        check: Check::NotInThisPolicy("the base role's policy, for agent/logs.credentials.role_arn"),
    },
];

/// Every operation of the `aws-sdk-cloudwatch` client, as its fluent method is named.
const CLOUDWATCH_OPERATIONS: &[&str] = &[
    "associate_dataset_kms_key",
    "create_resource_metrics_configuration",
    "delete_alarm_mute_rule",
    "delete_alarms",
    "delete_anomaly_detector",
    "delete_dashboards",
    "delete_insight_rules",
    "delete_metric_stream",
    "delete_resource_metrics_configuration",
    "describe_alarm_contributors",
    "describe_alarm_history",
    "describe_alarms",
    "describe_alarms_for_metric",
    "describe_anomaly_detectors",
    "describe_insight_rules",
    "disable_alarm_actions",
    "disable_insight_rules",
    "disassociate_dataset_kms_key",
    "enable_alarm_actions",
    "enable_insight_rules",
    "get_alarm_mute_rule",
    "get_dashboard",
    "get_dataset",
    "get_insight_rule_report",
    "get_metric_data",
    "get_metric_statistics",
    "get_metric_stream",
    "get_metric_widget_image",
    "get_o_tel_enrichment",
    "get_resource_metrics_configuration",
    "list_alarm_mute_rules",
    "list_dashboards",
    "list_managed_insight_rules",
    "list_metric_streams",
    "list_metrics",
    "list_tags_for_resource",
    "put_alarm_mute_rule",
    "put_anomaly_detector",
    "put_composite_alarm",
    "put_dashboard",
    "put_insight_rule",
    "put_log_alarm",
    "put_managed_insight_rules",
    "put_metric_alarm",
    "put_metric_data",
    "put_metric_stream",
    "set_alarm_state",
    "start_metric_streams",
    "start_o_tel_enrichment",
    "stop_metric_streams",
    "stop_o_tel_enrichment",
    "tag_resource",
    "untag_resource",
    "update_o_tel_enrichment",
    "update_resource_metrics_configuration",
];

/// Every operation of the `aws-sdk-cloudwatchlogs` client, as its fluent method is named.
const LOGS_OPERATIONS: &[&str] = &[
    "associate_kms_key",
    "associate_source_to_s3_table_integration",
    "cancel_export_task",
    "cancel_import_task",
    "create_delivery",
    "create_export_task",
    "create_import_task",
    "create_log_anomaly_detector",
    "create_log_group",
    "create_log_stream",
    "create_lookup_table",
    "create_scheduled_query",
    "delete_account_policy",
    "delete_data_protection_policy",
    "delete_delivery",
    "delete_delivery_destination",
    "delete_delivery_destination_policy",
    "delete_delivery_source",
    "delete_destination",
    "delete_index_policy",
    "delete_integration",
    "delete_log_anomaly_detector",
    "delete_log_group",
    "delete_log_stream",
    "delete_lookup_table",
    "delete_metric_filter",
    "delete_query_definition",
    "delete_resource_policy",
    "delete_retention_policy",
    "delete_scheduled_query",
    "delete_subscription_filter",
    "delete_syslog_configuration",
    "delete_transformer",
    "describe_account_policies",
    "describe_configuration_templates",
    "describe_deliveries",
    "describe_delivery_destinations",
    "describe_delivery_sources",
    "describe_destinations",
    "describe_export_tasks",
    "describe_field_indexes",
    "describe_import_task_batches",
    "describe_import_tasks",
    "describe_index_policies",
    "describe_log_groups",
    "describe_log_streams",
    "describe_lookup_tables",
    "describe_metric_filters",
    "describe_queries",
    "describe_query_definitions",
    "describe_resource_policies",
    "describe_subscription_filters",
    "disassociate_kms_key",
    "disassociate_source_from_s3_table_integration",
    "filter_log_events",
    "get_data_protection_policy",
    "get_delivery",
    "get_delivery_destination",
    "get_delivery_destination_policy",
    "get_delivery_source",
    "get_integration",
    "get_log_anomaly_detector",
    "get_log_events",
    "get_log_fields",
    "get_log_group_fields",
    "get_log_object",
    "get_log_record",
    "get_lookup_table",
    "get_query_results",
    "get_scheduled_query",
    "get_scheduled_query_history",
    "get_storage_tier_policy",
    "get_transformer",
    "list_aggregate_log_group_summaries",
    "list_anomalies",
    "list_integrations",
    "list_log_anomaly_detectors",
    "list_log_groups",
    "list_log_groups_for_query",
    "list_scheduled_queries",
    "list_sources_for_s3_table_integration",
    "list_syslog_configurations",
    "list_tags_for_resource",
    "list_tags_log_group",
    "put_account_policy",
    "put_bearer_token_authentication",
    "put_data_protection_policy",
    "put_delivery_destination",
    "put_delivery_destination_policy",
    "put_delivery_source",
    "put_destination",
    "put_destination_policy",
    "put_index_policy",
    "put_integration",
    "put_log_events",
    "put_log_group_deletion_protection",
    "put_metric_filter",
    "put_query_definition",
    "put_resource_policy",
    "put_retention_policy",
    "put_storage_tier_policy",
    "put_subscription_filter",
    "put_syslog_configuration",
    "put_transformer",
    "start_live_tail",
    "start_query",
    "stop_query",
    "tag_log_group",
    "tag_resource",
    "test_metric_filter",
    "test_transformer",
    "untag_log_group",
    "untag_resource",
    "update_anomaly",
    "update_delivery_configuration",
    "update_log_anomaly_detector",
    "update_lookup_table",
    "update_scheduled_query",
];

/// Every operation of the `aws-sdk-sts` client, as its fluent method is named.
const STS_OPERATIONS: &[&str] = &[
    "assume_role",
    "assume_role_with_saml",
    "assume_role_with_web_identity",
    "assume_root",
    "decode_authorization_message",
    "get_access_key_info",
    "get_caller_identity",
    "get_delegated_access_token",
    "get_federation_token",
    "get_session_token",
    "get_web_identity_token",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).expect("read agent/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            // Test modules may call anything against fakes; only shipped code counts.
            let shipped = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            if !path.components().any(|c| c.as_os_str() == "tests") {
                out.push((path, shipped));
            }
        }
    }
}

fn policy() -> Value {
    policy_file("manifests/iam-policy.json")
}

fn optional_policy() -> Value {
    policy_file("manifests/iam-policy-optional.json")
}

fn policy_file(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).expect("read the policy");
    let filled = text
        .replace("<region>", REGION)
        .replace("<account>", ACCOUNT)
        .replace("<cluster>", CLUSTER);
    serde_json::from_str(&filled).expect("the policy is JSON")
}

/// IAM's wildcard match: `*` any run of characters (`:` included), `?` one character;
/// case-insensitive for actions (`case_fold`), exact for ARNs.
fn glob(pattern: &str, value: &str, case_fold: bool) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = if case_fold {
        (
            pattern.to_lowercase().chars().collect(),
            value.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), value.chars().collect())
    };
    glob_chars(&p, &v)
}

fn glob_chars(p: &[char], v: &[char]) -> bool {
    match p.first() {
        None => v.is_empty(),
        Some('*') => (0..=v.len()).any(|i| glob_chars(&p[1..], &v[i..])),
        Some('?') => !v.is_empty() && glob_chars(&p[1..], &v[1..]),
        Some(c) => v.first() == Some(c) && glob_chars(&p[1..], &v[1..]),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// Whether an Allow statement covers `action` on `resource` with `namespace` (the only condition
/// key kinsight's requests carry). Statements with other condition keys never match.
fn allowed(policy: &Value, action: &str, resource: &str, namespace: Option<&str>) -> bool {
    policy["Statement"].as_array().expect("Statement list").iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"]).iter().any(|a| glob(a, action, true))
            && strings(&s["Resource"]).iter().any(|r| glob(r, resource, false))
            && conditions_hold(&s["Condition"], namespace)
    })
}

fn conditions_hold(cond: &Value, namespace: Option<&str>) -> bool {
    let Some(ops) = cond.as_object() else { return true };
    ops.iter().all(|(op, keys)| {
        keys.as_object().is_some_and(|keys| {
            keys.iter().all(|(key, values)| {
                let Some(ns) = namespace.filter(|_| key == "cloudwatch:namespace") else {
                    return false;
                };
                let vals = strings(values);
                match op.as_str() {
                    "StringEquals" => vals.iter().any(|v| v == ns),
                    "StringLike" => vals.iter().any(|v| glob(v, ns, false)),
                    _ => false,
                }
            })
        })
    })
}

#[test]
fn every_aws_operation_in_the_source_is_listed_and_allowed() {
    let mut files = Vec::new();
    sources(&root().join("agent"), &mut files);
    assert!(files.len() > 10, "found the sources");
    let called = |marker: &str| files.iter().any(|(_, text)| text.contains(marker));
    // 1. Every SDK operation the code calls is in USED.
    let mut unlisted = Vec::new();
    for (service, ops) in [
        ("cloudwatch", CLOUDWATCH_OPERATIONS),
        ("logs", LOGS_OPERATIONS),
        ("sts", STS_OPERATIONS),
    ] {
        for op in ops {
            let marker = format!(".{op}()");
            if called(&marker) && !USED.iter().any(|u| u.marker == marker) {
                let where_ = files
                    .iter()
                    .filter(|(_, t)| t.contains(&marker))
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>();
                unlisted.push(format!("{service} {op} in {where_:?}"));
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "AWS operations called but not in USED (add them there and to manifests/iam-policy.json): {unlisted:?}"
    );
    // 2. Every listed call that the code makes is allowed by the shipped policy.
    let policy = policy();
    let mut seen = 0;
    for u in USED.iter().filter(|u| called(u.marker)) {
        seen += 1;
        match &u.check {
            Check::Allowed { resources, namespace } => {
                for r in *resources {
                    assert!(
                        allowed(&policy, u.action, r, *namespace),
                        "{} on {r} (namespace {namespace:?}) is not allowed by manifests/iam-policy.json",
                        u.action
                    );
                }
            }
            Check::Optional { resources } => {
                for r in *resources {
                    assert!(
                        allowed(&optional_policy(), u.action, r, None),
                        "{} on {r} is not allowed by manifests/iam-policy-optional.json",
                        u.action
                    );
                    assert!(
                        !allowed(&policy, u.action, r, None),
                        "{} on {r} is optional: the required policy must not grant it",
                        u.action
                    );
                }
            }
            Check::NotInThisPolicy(why) => {
                assert!(!u.action.is_empty(), "{why}");
            }
        }
    }
    assert!(seen >= 4, "the identity module's own calls are found ({seen})");
}

#[test]
fn the_policy_is_no_broader_than_its_purpose() {
    let p = policy();
    // Other namespaces, other clusters' groups, other accounts' groups: denied.
    assert!(!allowed(&p, "cloudwatch:PutMetricData", "*", Some("MyApp/Alarms")));
    assert!(!allowed(
        &p,
        "cloudwatch:PutMetricData",
        "*",
        Some("ContainerInsightsX")
    ));
    assert!(!allowed(&p, "cloudwatch:PutMetricData", "*", None));
    let other = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/containerinsights/other-cluster/application";
    assert!(!allowed(&p, "logs:PutLogEvents", other, None));
    assert!(!allowed(
        &p,
        "logs:CreateLogGroup",
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x",
        None
    ));
    assert!(!allowed(
        &p,
        "logs:PutLogEvents",
        &GROUP_ARN.replace(ACCOUNT, "999999999999"),
        None
    ));
    // Actions kinsight does not use: not granted.
    for action in [
        "logs:DescribeLogGroups",
        "logs:DeleteLogGroup",
        "cloudwatch:GetMetricData",
        "ec2:DescribeVolumes",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:*",
        "ssm:GetParameter",
        "logs:*",
    ] {
        assert!(
            !allowed(&p, action, GROUP_ARN, None) && !allowed(&p, action, "*", None),
            "{action} granted"
        );
    }
    // Every group kinsight writes, and their streams, are covered by the one ARN pattern.
    for g in ["application", "dataplane", "host", "performance"] {
        let arn = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/containerinsights/{CLUSTER}/{g}");
        assert!(allowed(&p, "logs:CreateLogGroup", &arn, None));
        assert!(allowed(
            &p,
            "logs:PutLogEvents",
            &format!("{arn}:log-stream:ip-10-0-1-23"),
            None
        ));
    }
    // The placeholders are documented ones only.
    let raw = std::fs::read_to_string(root().join("manifests/iam-policy.json")).unwrap();
    for ph in ["<region>", "<account>", "<cluster>"] {
        assert!(raw.contains(ph), "{ph}");
    }
}

#[test]
fn the_optional_policy_grants_only_its_two_actions() {
    let p = optional_policy();
    let statements = p["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert!(allowed(&p, "logs:PutRetentionPolicy", GROUP_ARN, None));
    let other = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/x";
    assert!(!allowed(&p, "logs:PutRetentionPolicy", other, None));
    assert!(allowed(&p, "ec2:DescribeTags", "*", None));
    for action in [
        "logs:PutLogEvents",
        "logs:DeleteRetentionPolicy",
        "ec2:DescribeInstances",
        "cloudwatch:PutMetricData",
    ] {
        assert!(
            !allowed(&p, action, GROUP_ARN, None) && !allowed(&p, action, "*", None),
            "{action}"
        );
    }
}

#[test]
fn the_pod_identity_trust_policy_names_the_namespace_service_account_cluster_and_account() {
    let text = std::fs::read_to_string(root().join("manifests/pod-identity-trust-policy.json")).unwrap();
    let p: Value = serde_json::from_str(&text).expect("JSON");
    let [statement] = p["Statement"].as_array().unwrap().as_slice() else {
        panic!("one statement: {p}")
    };
    assert_eq!(statement["Principal"]["Service"], "pods.eks.amazonaws.com");
    assert_eq!(
        statement["Action"],
        serde_json::json!(["sts:AssumeRole", "sts:TagSession"])
    );
    let eq = &statement["Condition"]["StringEquals"];
    assert_eq!(eq["aws:RequestTag/kubernetes-namespace"], "amazon-cloudwatch");
    assert_eq!(eq["aws:RequestTag/kubernetes-service-account"], "kinsight");
    assert_eq!(eq["aws:RequestTag/eks-cluster-name"], "<cluster>");
    assert_eq!(eq["aws:SourceAccount"], "<account>");
}
