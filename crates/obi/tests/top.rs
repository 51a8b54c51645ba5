//! `obi top` in a real terminal: tmux runs it at a fixed size next to a real
//! HTTP server, the test makes traffic (errors and a fan-out whose calls
//! are the server's children), reads the screen with `capture-pane`, moves
//! the selection with keys and quits with `q`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const WIDTH: u16 = 160;
const HEIGHT: u16 = 50;

/// A tmux server of its own (own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        static SESSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux { socket: format!("obi-top-test-{}-{n}", std::process::id()) };
        let (w, h) = (WIDTH.to_string(), HEIGHT.to_string());
        tmux.run(&["new-session", "-d", "-s", "top", "-x", &w, "-y", &h, command]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux (scripts/install-deps.sh)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "top", k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until the screen satisfies `done`; returns the last screen.
    fn wait_screen(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if done(&screen) || Instant::now() >= deadline {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

/// A row of the table: (requests, errors) of `service`/`protocol`/`operation`.
fn row_counts(screen: &str, service: &str, protocol: &str, operation: &str) -> Option<(u64, u64)> {
    screen.lines().find_map(|line| {
        let cells: Vec<&str> =
            line.trim_matches(|c: char| c == '│' || c == '>' || c.is_whitespace()).split_whitespace().collect();
        if cells.len() < 8 || cells[0] != service || cells[1] != protocol {
            return None;
        }
        // Operation cells sit between the protocol and the five numbers.
        if cells[2..cells.len() - 5].join(" ") != operation {
            return None;
        }
        Some((cells[cells.len() - 2].parse().ok()?, cells[cells.len() - 1].parse().ok()?))
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn top_shows_routes_errors_and_trace_trees() {
    require_root();
    let port = free_port();
    let server = python_server(port);
    // Named after its script (apps/http_server.py).
    let service = "http_server".to_string();
    // Prometheus keeps working beside the view.
    let prom_port = free_port();
    let session = Session::new(port, &[format!("OTEL_EBPF_PROMETHEUS_PORT={prom_port}")]);
    let tmux = Tmux::start(&session.command);

    // Until the server is instrumented its requests are not seen: warm up
    // on a route of its own until it shows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        curl(&[&format!("http://127.0.0.1:{port}/big/10")]);
        let screen =
            tmux.wait_screen(Duration::from_secs(2), |s| row_counts(s, &service, "HTTP", "GET /big/*").is_some());
        if row_counts(&screen, &service, "HTTP", "GET /big/*").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the server never showed up:\n{screen}\nexit: {}", read(&session.exit_file));
    }

    for _ in 0..7 {
        curl(&[&format!("http://127.0.0.1:{port}/status/500")]);
    }
    // 404 is not a server error.
    for _ in 0..3 {
        curl(&[&format!("http://127.0.0.1:{port}/status/404")]);
    }
    for id in 0..3 {
        curl(&[&format!("http://127.0.0.1:{port}/fanout/{id}/2?base=http://127.0.0.1:{port}")]);
    }
    let want = [
        ("HTTP", "GET /status/*", (10, 7)),
        ("HTTP", "GET /fanout/*/*", (3, 0)),
        ("HTTP", "GET /leaf/*/*", (6, 0)),
        ("HTTPClient", "GET /leaf/*/*", (6, 0)),
    ];
    let all_there =
        |s: &str| want.iter().all(|(protocol, op, counts)| row_counts(s, &service, protocol, op) == Some(*counts));
    let screen = tmux.wait_screen(Duration::from_secs(20), all_there);
    for (protocol, op, counts) in want {
        assert_eq!(row_counts(&screen, &service, protocol, op), Some(counts), "{protocol} {op}:\n{screen}");
    }
    // The same counts on the metrics page.
    let count = "http_server_request_duration_seconds_count";
    let status = [("service_name", service.as_str()), ("http_route", "/status/*")];
    let samples = prom::scrape_until(prom_port, Duration::from_secs(20), |s| prom::total(s, count, &status) >= 10.0);
    assert_eq!(prom::total(&samples, count, &status), 10.0);
    let server_errors = [("service_name", service.as_str()), ("http_response_status_code", "500")];
    assert_eq!(prom::total(&samples, count, &server_errors), 7.0);

    // Sorted by name (s three times: errors, p99, name), the fan-out is the
    // second row (`/big/*` first); select it and read its traces.
    tmux.keys(&["s", "s", "s"]);
    let screen = tmux.wait_screen(Duration::from_secs(5), |s| s.contains("sort: name"));
    assert!(screen.contains("sort: name"), "{screen}");
    tmux.keys(&["j"]);
    let title = format!("slowest traces: {service} GET /fanout/*/*");
    let screen = tmux.wait_screen(Duration::from_secs(5), |s| s.contains(&title));
    let lines: Vec<&str> = screen.lines().collect();
    let roots: Vec<usize> =
        (0..lines.len()).filter(|&i| lines[i].contains(&format!("HTTP GET /fanout/*/* 200 [{service}]"))).collect();
    assert_eq!(roots.len(), 3, "three fan-out traces:\n{screen}");
    let child = "└─ ";
    let call = format!("HTTPClient GET /leaf/*/* 200 -> 127.0.0.1:{port} [{service}]");
    for root in roots {
        for line in &lines[root + 1..root + 3] {
            assert!(line.contains(child) && line.contains(&call), "the fan-out's two calls under it:\n{screen}");
        }
    }

    tmux.keys(&["q"]);
    session.assert_restored(&tmux);
    drop(server);
}

/// Stopped by a signal instead of a key, the view restores the terminal too.
#[test]
fn top_restores_the_terminal_on_sigterm() {
    require_root();
    let port = free_port();
    let _server = python_server(port);
    let session = Session::new(port, &[]);
    let tmux = Tmux::start(&session.command);
    let screen = tmux.wait_screen(Duration::from_secs(60), |s| s.contains("services and routes"));
    assert!(screen.contains("services and routes"), "{screen}");
    // The pane runs `sh -c ...`, whose child is the agent.
    let shell = tmux.run(&["display-message", "-p", "-t", "top", "#{pane_pid}"]).trim().to_string();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
    let agent: i32 = children.split_whitespace().next().expect("the agent's pid").parse().unwrap();
    // SAFETY: kill(2) on the agent this test started.
    assert_eq!(unsafe { libc::kill(agent, libc::SIGTERM) }, 0);
    session.assert_restored(&tmux);
}

/// An `obi top` run in a tmux pane: the pane's command, and the files where
/// its exit status and the terminal's modes are written once it exits.
struct Session {
    _dir: tempfile::TempDir,
    exit_file: PathBuf,
    stty_file: PathBuf,
    command: String,
}

impl Session {
    /// `obi top` tracing the server on `port`; `extra` adds environment
    /// variables (`NAME=value`).
    fn new(port: u16, extra: &[String]) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let exit_file = dir.path().join("exit");
        let stty_file = dir.path().join("stty");
        let obi = PathBuf::from(env!("CARGO_BIN_EXE_obi"));
        // A clean environment for the agent; after it exits, its status and
        // the terminal's modes are written down.
        let command = format!(
            "env -i PATH=\"$PATH\" TERM=\"$TERM\" OTEL_EBPF_OPEN_PORT={port} OTEL_EBPF_DISCOVERY_POLL_INTERVAL=500ms \
             {extra} {obi} top; echo $? > {exit}; stty -a > {stty}; sleep 600",
            extra = extra.join(" "),
            obi = obi.display(),
            exit = exit_file.display(),
            stty = stty_file.display(),
        );
        Session { _dir: dir, exit_file, stty_file, command }
    }

    /// The agent exited 0 and left the terminal as it found it.
    fn assert_restored(&self, tmux: &Tmux) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while read(&self.stty_file).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(read(&self.exit_file).trim(), "0", "obi top exit status; screen:\n{}", tmux.screen());
        // Back from the alternate screen, in cooked mode with echo.
        assert_eq!(tmux.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]).trim(), "0");
        let stty = read(&self.stty_file);
        let modes: Vec<&str> = stty.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig"] {
            assert!(modes.contains(&mode), "terminal left without {mode}: {stty}");
        }
        let screen = tmux.screen();
        assert!(!screen.contains("services and routes"), "{screen}");
        assert!(screen.contains("msg=stopped"), "the agent's last log lines are on the restored terminal:\n{screen}");
    }
}
