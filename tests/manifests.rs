//! The standalone manifests: the `NetworkPolicy` admits the telemetry port only, and only from a
//! labelled scraper (the node's kubelet probes are always admitted: "traffic to and from the
//! node where a Pod is running is always allowed",
//! <https://kubernetes.io/docs/concepts/services-networking/network-policies/>).

use serde_json::Value;

fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/manifests/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifests/{name} is not JSON: {e}"))
}

#[test]
fn the_network_policy_admits_port_9464_from_a_labelled_scraper_only() {
    let np = manifest("networkpolicy.json");
    assert_eq!(np["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(np["kind"], "NetworkPolicy");
    assert_eq!(np["metadata"]["namespace"], "amazon-cloudwatch");
    let spec = &np["spec"];
    assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress"]));
    assert!(
        spec["podSelector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
    );
    let [rule] = spec["ingress"].as_array().unwrap().as_slice() else {
        panic!("one ingress rule: {spec}")
    };
    assert_eq!(rule["ports"], serde_json::json!([{"protocol": "TCP", "port": 9464}]));
    let [from] = rule["from"].as_array().unwrap().as_slice() else {
        panic!("one peer: {rule}")
    };
    assert_eq!(from["podSelector"]["matchLabels"]["kinsight.io/scraper"], "true");
    assert!(from.get("ipBlock").is_none(), "no address range is admitted");
    // The port is the one the agent listens on by default.
    assert_eq!(kinsight::config::TELEMETRY_PORT, 9464);
}
