//! `lien-sim`: topology simulations of Lien networks.
//!
//! It will run scenarios (ministries × provinces, slow links, churn, partitions, adversaries) on
//! the real `lien-node` code over a simulated network with virtual time, plus a discrete-event
//! model of the same protocols for 10,000+ nodes, and compare them with a central portal. See
//! issue "lien-sim: topology simulations on the real node code"; nothing runs yet.

fn main() -> std::process::ExitCode {
    eprintln!("error: lien-sim has no commands yet; see ARCHITECTURE.md for what it will hold");
    std::process::ExitCode::from(1)
}
