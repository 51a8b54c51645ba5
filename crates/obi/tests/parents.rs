//! Right parents, or none, under concurrency in the runtimes users run: a
//! Java thread-pool server and an asyncio event loop. Every test goes
//! through the wrong-parent audit (tests/common/audit.rs).

mod common;

use std::process::Command;
use std::time::Duration;

use common::audit::{self, Fanout};
use common::*;

const WAIT: Duration = Duration::from_secs(60);

fn agent_for(ports: &[u16]) -> Agent {
    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    Agent::builder()
        .env("OTEL_EBPF_BPF_CONTEXT_PROPAGATION", "headers")
        .env("OTEL_EBPF_OPEN_PORT", &list.join(","))
        .start()
}

/// The JDK's HttpServer with a 16-thread executor, 50 concurrent requests
/// making 2 calls each. Calls from the thread serving the request are its
/// children (100%); calls handed to a second pool cannot be tied to a
/// request by the kernel and start their own traces. Never a wrong parent.
#[test]
fn java_thread_pool_server() {
    require_root();
    let (front, back) = (free_port(), free_port());
    let java = start_server(
        "java-fanout",
        Command::new("java").arg(apps_dir().join("FanoutServer.java")).arg(front.to_string()),
    );
    let leaf = python_server(back);
    let agent = agent_for(&[front, back]);
    agent.wait_instrumented(java.pid(), WAIT);
    agent.wait_instrumented(leaf.pid(), WAIT);

    let inline = Fanout { requests: 50, concurrency: 50, calls: 2, via: "inline" };
    let spans = audit::fanout_spans(&agent, front, back, &inline);
    let result = audit::parent_audit("java HttpServer thread pool, calls inline", &spans);
    assert_eq!(result, audit::Audit { right: 100, root: 0, wrong: 0 });

    let pooled = Fanout { requests: 50, concurrency: 50, calls: 2, via: "pool" };
    let spans = audit::fanout_spans(&agent, front, back, &pooled);
    let result = audit::parent_audit("java HttpServer thread pool, calls via a second pool", &spans);
    assert_eq!(result.wrong, 0, "{result:?}");
}

/// aiohttp: one event loop serves 50 concurrent requests and makes their 100
/// calls. The kernel cannot tell which request a call belongs to: every
/// call starts its own trace, none is put under a wrong request.
#[test]
fn asyncio_event_loop_server() {
    require_root();
    let (front, back) = (free_port(), free_port());
    let aio = start_server(
        "aiohttp-fanout",
        Command::new(venv_python()).arg(apps_dir().join("aiohttp_server.py")).arg(front.to_string()),
    );
    let leaf = python_server(back);
    let agent = agent_for(&[front, back]);
    agent.wait_instrumented(aio.pid(), WAIT);
    agent.wait_instrumented(leaf.pid(), WAIT);

    let load = Fanout { requests: 50, concurrency: 50, calls: 2, via: "asyncio" };
    let spans = audit::fanout_spans(&agent, front, back, &load);
    let result = audit::parent_audit("python aiohttp event loop", &spans);
    assert_eq!(result.wrong, 0, "{result:?}");
    assert_eq!(result.total(), 100);
}
