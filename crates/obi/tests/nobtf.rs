//! The no-BTF mode (OTEL_EBPF_BTF_IGNORE_KERNEL=true forces it on a kernel
//! that has BTF): sockets known from the accept/connect/close syscalls,
//! addresses from sock:inet_sock_set_state, nothing read from kernel
//! structures. Real servers and clients; exact span counts and ports.
//! Runs as root (see tests/common::require_root).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn no_btf_agent(config: &str) -> Agent {
    let agent = Agent::builder().env("OTEL_EBPF_BTF_IGNORE_KERNEL", "true").config(config).start();
    assert!(
        agent.proc.wait_line(|l| l.contains("running without BTF"), WAIT).is_some(),
        "the agent did not say it runs without BTF: {:#?}",
        agent.proc.lines()
    );
    agent
}

fn server_spans_on(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "HTTP") && host_port(s) == port
}

fn client_spans_to(port: u16) -> impl Fn(&Value) -> bool {
    move |s| is_type(s, "HTTPClient") && host_port(s) == port
}

fn peer_ports(spans: &[Value]) -> BTreeSet<String> {
    spans.iter().map(|s| field(s, "peerPort").to_string()).collect()
}

/// python3 -m http.server (HTTP/1.0: one connection per request) with curl
/// and the python client: each request once as a server span and once as a
/// client span, both sides naming the same client port.
#[test]
fn http1_server_and_clients_without_btf() {
    require_root();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "x".repeat(1234)).unwrap();
    let server = stdlib_http_server(port, dir.path());
    let agent = no_btf_agent(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    - exe_path: '*/curl'\n    - cmd_args: '*http_client.py 127.0.0.1 {port}*'\n"
    ));
    agent.wait_instrumented(server.pid(), WAIT);

    curl(&[&format!("http://127.0.0.1:{port}/index.html")]);
    curl(&[&format!("http://127.0.0.1:{port}/missing")]);
    let mut client = python_client(port, &["GET:/index.html?x=1"], &[]);
    client.wait_exit(WAIT);
    assert!(client.lines().contains(&"200 1234".to_string()), "{:?}", client.lines());

    let spans = agent.wait_spans(3, WAIT, server_spans_on(port));
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let ok: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == "/index.html").collect();
    assert_eq!(ok.len(), 2, "{spans:#?}");
    for s in &spans {
        assert_eq!(field(s, "kind"), "SPAN_KIND_SERVER");
        assert_eq!(attr(s, "method"), "GET");
        assert_eq!(attr(s, "serverPort"), port.to_string());
        assert_eq!(field(s, "host"), "127.0.0.1", "{s:#}");
        assert_eq!(field(s, "peer"), "127.0.0.1", "{s:#}");
        assert_ne!(field(s, "peerPort"), port.to_string());
        assert_ne!(field(s, "peerPort"), "0");
    }
    for s in &ok {
        assert_eq!(attr(s, "status"), "200");
        assert_eq!(attr(s, "responseLen"), "1234");
    }
    let missing: Vec<&Value> = spans.iter().filter(|s| attr(s, "url") == "/missing").collect();
    assert_eq!(missing.len(), 1, "{spans:#?}");
    assert_eq!(attr(missing[0], "status"), "404");

    let clients = agent.wait_spans(3, WAIT, client_spans_to(port));
    assert_eq!(clients.len(), 3, "{clients:#?}");
    for c in &clients {
        assert_eq!(field(c, "kind"), "SPAN_KIND_CLIENT");
        assert_eq!(attr(c, "method"), "GET");
        assert_eq!(field(c, "host"), "127.0.0.1");
        assert_eq!(field(c, "peer"), "127.0.0.1");
    }
    let from = |name: &str| clients.iter().filter(|c| field(c, "peerName").starts_with(name)).count();
    assert_eq!(from("curl"), 2, "{clients:#?}");
    assert_eq!(from("http_client"), 1, "{clients:#?}");
    // Both ends of each connection agree on the client's port.
    assert_eq!(peer_ports(&spans), peer_ports(&clients), "server {spans:#?}\nclients {clients:#?}");
    assert_eq!(peer_ports(&spans).len(), 3);

    // Nothing more than the requests made.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(agent.spans().iter().filter(|s| server_spans_on(port)(s)).count(), 3);
    assert_eq!(agent.spans().iter().filter(|s| client_spans_to(port)(s)).count(), 3);
}

/// The keep-alive server (tests/apps/http_server.py, HTTP/1.1, threaded) and
/// the python client making four requests on one connection.
#[test]
fn keep_alive_without_btf() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    let agent = no_btf_agent(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*http_client.py 127.0.0.1 {port}*'\n"
    ));
    agent.wait_instrumented(server.pid(), WAIT);

    let mut client = python_client(port, &["GET:/", "GET:/status/404", "POST:/", "GET:/big/5000"], &["--body", "300"]);
    client.wait_exit(WAIT);
    assert!(client.lines().contains(&"done".to_string()), "{:?}", client.lines());

    let spans = agent.wait_spans(4, WAIT, server_spans_on(port));
    let clients = agent.wait_spans(4, WAIT, client_spans_to(port));
    assert_eq!(spans.len(), 4, "{spans:#?}");
    assert_eq!(clients.len(), 4, "{clients:#?}");
    for set in [&spans, &clients] {
        let mut got: Vec<(String, String, String)> = set
            .iter()
            .map(|s| (attr(s, "method").to_string(), attr(s, "url").to_string(), attr(s, "status").to_string()))
            .collect();
        got.sort();
        let want =
            [("GET", "/", "200"), ("GET", "/big/5000", "200"), ("GET", "/status/404", "404"), ("POST", "/", "200")];
        assert_eq!(got, want.map(|(m, u, s)| (m.into(), u.into(), s.into())), "{set:#?}");
    }
    // One connection: one client port on both sides.
    assert_eq!(peer_ports(&spans).len(), 1, "{spans:#?}");
    assert_eq!(peer_ports(&spans), peer_ports(&clients));
    let big = spans.iter().find(|s| attr(s, "url") == "/big/5000").unwrap();
    assert_eq!(attr(big, "responseLen"), "5000");
}

/// A keep-alive connection open before the agent started: both ends are
/// registered from /proc when their processes are chosen. The client's two
/// requests after that are traced; the server's first one is not (its
/// thread was already blocked in recv() when the agent attached, so that
/// read has no entry), its second is.
#[test]
fn connection_opened_before_the_agent_without_btf() {
    use std::io::Write;
    require_root();
    let port = free_port();
    let server = python_server(port);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("early_client.py");
    std::fs::write(
        &script,
        "import http.client, sys\n\
         c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=30)\n\
         c.request('GET', '/leaf/before'); c.getresponse().read()\n\
         print('port', c.sock.getsockname()[1], flush=True)\n\
         sys.stdin.readline()\n\
         for path in ('/leaf/after', '/leaf/again'):\n\
         \x20   c.request('GET', path); r = c.getresponse(); r.read()\n\
         \x20   print('got', path, r.status, flush=True)\n",
    )
    .unwrap();
    let mut client =
        spawn_with_stdin("early-client", std::process::Command::new(python()).arg(&script).arg(port.to_string()));
    let line = client.wait_line(|l| l.starts_with("port "), WAIT).expect("the client's first request");
    let client_port = line.trim_start_matches("port ").to_string();

    let agent = no_btf_agent(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*early_client.py*'\n"
    ));
    agent.wait_instrumented(server.pid(), WAIT);
    agent.wait_instrumented(client.pid(), WAIT);
    client.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(client.wait_exit(WAIT).is_some_and(|s| s.success()), "{:?}", client.lines());
    assert!(client.lines().contains(&"got /leaf/again 200".to_string()), "{:?}", client.lines());

    agent.wait_spans(1, WAIT, server_spans_on(port));
    agent.wait_spans(2, WAIT, client_spans_to(port));
    std::thread::sleep(Duration::from_secs(1));
    let spans: Vec<Value> = agent.spans().into_iter().filter(|s| server_spans_on(port)(s)).collect();
    let clients: Vec<Value> = agent.spans().into_iter().filter(|s| client_spans_to(port)(s)).collect();
    let urls = |set: &[Value]| set.iter().map(|s| attr(s, "url").to_string()).collect::<Vec<_>>();
    assert_eq!(urls(&spans), ["/leaf/again"], "{spans:#?}");
    assert_eq!(urls(&clients), ["/leaf/after", "/leaf/again"], "{clients:#?}");
    for s in spans.iter().chain(&clients) {
        assert_eq!(attr(s, "status"), "200");
        assert_eq!(field(s, "peerPort"), client_port, "{s:#}");
        assert_eq!(field(s, "peer"), "127.0.0.1");
        assert_eq!(field(s, "host"), "127.0.0.1");
    }
}

/// Node.js accepts with a NULL address (libuv: `accept4(fd, NULL, NULL)`),
/// so the peer's address cannot name the connection: its first read does
/// (tcp:tcp_rcv_space_adjust runs inside it). Five curl requests on new
/// connections and four keep-alive requests from the python client: each
/// one server span with the client's real port, agreeing with the clients.
#[test]
fn node_server_accepting_with_a_null_address_without_btf() {
    require_root();
    let port = free_port();
    let server = node_server(port);
    let agent = no_btf_agent(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    - exe_path: '*/curl'\n    - cmd_args: '*http_client.py 127.0.0.1 {port}*'\n"
    ));
    agent.wait_instrumented(server.pid(), WAIT);
    for i in 0..5 {
        let out =
            curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{port}/status/{}", 200 + i)]);
        assert_eq!(out, format!("{}", 200 + i));
    }
    let paths = ["GET:/ka/1", "GET:/ka/2", "GET:/ka/3", "GET:/ka/4"];
    let mut client = python_client(port, &paths, &[]);
    client.wait_exit(WAIT);

    let spans = agent.wait_spans(9, WAIT, server_spans_on(port));
    assert_eq!(spans.len(), 9, "{spans:#?}");
    for s in &spans {
        assert_eq!(field(s, "host"), "127.0.0.1", "{s:#}");
        assert_eq!(field(s, "peer"), "127.0.0.1", "{s:#}");
        assert_ne!(field(s, "peerPort"), "0", "{s:#}");
        assert_ne!(field(s, "peerPort"), port.to_string(), "{s:#}");
    }
    let clients = agent.wait_spans(9, WAIT, client_spans_to(port));
    assert_eq!(clients.len(), 9, "{clients:#?}");
    // Five connections of one request, one of four: six client ports, the
    // same on both sides.
    assert_eq!(peer_ports(&spans), peer_ports(&clients), "server {spans:#?}\nclients {clients:#?}");
    assert_eq!(peer_ports(&spans).len(), 6);
    let keep_alive: Vec<&Value> = spans.iter().filter(|s| attr(s, "url").starts_with("/ka/")).collect();
    assert_eq!(peer_ports(&keep_alive.into_iter().cloned().collect::<Vec<_>>()).len(), 1);
}

/// Short-lived clients chosen by their command line: 40 curl runs at once,
/// selected by a word in their URL, each gone within milliseconds, most of
/// them before discovery gets to read their /proc. Without BTF the exec
/// event still carries the arguments (read from the old program's memory
/// when execve begins): 40 of 40 client spans. Without them such a process
/// was matched by its path only and its spans dropped (seen: 0 and 3 of 40).
#[test]
fn short_lived_clients_selected_by_their_arguments_without_btf() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    let agent = no_btf_agent(&format!(
        "discovery:\n  instrument:\n    - open_ports: {port}\n    - cmd_args: '*/chosen-by-args/*'\n"
    ));
    agent.wait_instrumented(server.pid(), WAIT);
    // All started before any is waited for (from this test process, which
    // nothing selects).
    let mut runs: Vec<std::process::Child> = (0..40)
        .map(|i| {
            std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", &format!("http://127.0.0.1:{port}/chosen-by-args/{i}")])
                .spawn()
                .unwrap()
        })
        .collect();
    for run in &mut runs {
        assert!(run.wait().unwrap().success());
    }
    curl(&[&format!("http://127.0.0.1:{port}/not-chosen")]);
    let clients = agent.wait_spans(40, WAIT, client_spans_to(port));
    assert_eq!(clients.len(), 40, "{clients:#?}");
    assert!(clients.iter().all(|c| field(c, "peerName") == "curl"), "{clients:#?}");
    // The unselected curl (another URL) made no client span.
    assert!(clients.iter().all(|c| attr(c, "url").starts_with("/chosen-by-args/")), "{clients:#?}");
}
