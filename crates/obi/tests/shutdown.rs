//! Stopping the agent: Ctrl-C (SIGINT) and SIGTERM with no traffic return
//! the terminal within a second.
//! Runs as root (see tests/common::require_root).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The promise to a user pressing Ctrl-C.
const QUICK: Duration = Duration::from_secs(1);

fn stop_time(signal: i32) -> Duration {
    let mut agent = Agent::builder().env("OTEL_EBPF_OPEN_PORT", &free_port().to_string()).start();
    // Let the loop settle into its idle waits (the case the user hits).
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    agent.proc.signal(signal);
    let status = agent.proc.wait_exit(Duration::from_secs(20)).expect("agent did not stop");
    let took = sent.elapsed();
    assert!(status.success(), "agent exited with {status}: {:#?}", agent.proc.lines());
    assert!(agent.proc.lines().iter().any(|l| l.contains("msg=stopped")), "no clean stop: {:#?}", agent.proc.lines());
    took
}

#[test]
fn idle_agent_stops_within_a_second() {
    require_root();
    for (name, signal) in [("SIGINT", libc::SIGINT), ("SIGTERM", libc::SIGTERM)] {
        let took = stop_time(signal);
        eprintln!("{name}: stopped in {took:?}");
        assert!(took < QUICK, "{name} took {took:?} to stop an idle agent (limit {QUICK:?})");
    }
}
