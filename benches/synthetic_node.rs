//! Writes a synthetic node (cgroup v2 tree, `/proc` files and a pod list) for the steady-state
//! measurement of `scripts/bench`: `cargo run --release --example synthetic_node -- DIR PODS`.

#[path = "support/synthetic.rs"]
mod synthetic;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(pods)) = (args.next(), args.next().and_then(|p| p.parse::<usize>().ok())) else {
        eprintln!("usage: synthetic_node DIR PODS");
        std::process::exit(64);
    };
    let node = synthetic::Node::create(std::path::Path::new(&dir), pods, 3);
    eprintln!(
        "{} pods × {} containers under {dir}; pod list {}",
        node.pods,
        node.containers,
        node.pod_list_path().display()
    );
}
