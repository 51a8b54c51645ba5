//! One conversation with a Node.js inspector: open it with SIGUSR1, find
//! its port, evaluate expressions over its WebSocket (Chrome DevTools
//! Protocol), close it again.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tungstenite::{Message, WebSocket};

use super::InjectError;
use super::own_conns::OwnConnections;
use crate::discover::procscan;

/// SIGUSR1's bit in `/proc/<pid>/status` signal masks.
const SIGUSR1_BIT: u64 = 1 << (libc::SIGUSR1 - 1);
/// How often the listening sockets are polled while the inspector opens.
const POLL: Duration = Duration::from_millis(20);

/// A CDP session with one process's inspector.
pub(super) struct Session {
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

/// Whether `pid` handles SIGUSR1. Node.js does (to open its inspector)
/// unless started with `--disable-sigusr1`; then the default action would
/// kill the process, so it must not get the signal.
pub(super) fn catches_sigusr1(pid: u32) -> Result<bool, InjectError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(InjectError::Proc)?;
    Ok(sigusr1_caught(&status))
}

fn sigusr1_caught(status: &str) -> bool {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("SigCgt:"))
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .any(|mask| mask & SIGUSR1_BIT != 0)
}

/// Whether `pid` shares our network namespace: the inspector listens on the
/// process's loopback, which only then is ours.
pub(super) fn same_network(pid: u32) -> Result<bool, InjectError> {
    let ns = |p: &str| std::fs::metadata(format!("/proc/{p}/ns/net")).map(|m| (m.dev(), m.ino()));
    Ok(ns("self").map_err(InjectError::Proc)? == ns(&pid.to_string()).map_err(InjectError::Proc)?)
}

/// Sends SIGUSR1 and waits for the process to listen on a new port: its
/// inspector (127.0.0.1:9229 unless the process chose another port).
pub(super) fn open(pid: u32, timeout: Duration) -> Result<u16, InjectError> {
    let before: HashSet<u64> = procscan::listening_sockets(pid).into_iter().map(|(ino, _)| ino).collect();
    // SAFETY: plain kill(2) on a pid; SIGUSR1 is handled (checked by the caller).
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) } != 0 {
        return Err(InjectError::Signal(std::io::Error::last_os_error()));
    }
    let deadline = Instant::now() + timeout;
    loop {
        let new = procscan::listening_sockets(pid).into_iter().find(|(ino, _)| !before.contains(ino));
        if let Some((_, port)) = new {
            return Ok(port);
        }
        if Instant::now() >= deadline {
            return Err(InjectError::NoInspector);
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "webSocketDebuggerUrl")]
    ws_url: Option<String>,
}

impl Session {
    /// Connects to `pid`'s inspector on `port` (first target of
    /// `/json/list`); both connections are recorded in `own`.
    pub(super) fn connect(
        pid: u32,
        port: u16,
        timeout: Duration,
        own: &OwnConnections,
    ) -> Result<Session, InjectError> {
        let url = debugger_url(port, timeout, &|s| record(own, pid, port, s))?;
        let stream = connect_stream(port, timeout)?;
        record(own, pid, port, &stream);
        let (ws, _) = tungstenite::client(url.as_str(), stream).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => InjectError::WebSocket(e),
            tungstenite::HandshakeError::Interrupted(_) => InjectError::Timeout,
        })?;
        Ok(Session { ws, next_id: 1 })
    }

    /// `Runtime.evaluate`; returns the value (by value) or the exception text.
    pub(super) fn evaluate(&mut self, expression: &str) -> Result<serde_json::Value, InjectError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({
            "id": id,
            "method": "Runtime.evaluate",
            // The command-line API gives the expression `require`.
            "params": {"expression": expression, "includeCommandLineAPI": true, "returnByValue": true},
        });
        self.ws.send(Message::text(request.to_string()))?;
        loop {
            let Message::Text(text) = self.ws.read()? else { continue };
            let reply: serde_json::Value = serde_json::from_str(&text).map_err(InjectError::Protocol)?;
            if reply["id"].as_u64() != Some(id) {
                continue; // an event, not our answer
            }
            let result = &reply["result"];
            if let Some(ex) = result.get("exceptionDetails") {
                let text = ex["exception"]["description"].as_str().or(ex["text"].as_str()).unwrap_or("exception");
                return Err(InjectError::Script(text.lines().next().unwrap_or_default().to_owned()));
            }
            if let Some(err) = reply.get("error") {
                return Err(InjectError::Script(err["message"].as_str().unwrap_or("error").to_owned()));
            }
            return Ok(result["result"]["value"].clone());
        }
    }

    pub(super) fn close(mut self) {
        // Best effort: the process closes its side when the inspector stops.
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

fn record(own: &OwnConnections, pid: u32, port: u16, stream: &TcpStream) {
    if let Ok(local) = stream.local_addr() {
        own.record(pid, port, local.port());
    }
}

fn connect_stream(port: u16, timeout: Duration) -> Result<TcpStream, InjectError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(InjectError::Connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(InjectError::Connect)?;
    stream.set_write_timeout(Some(timeout)).map_err(InjectError::Connect)?;
    Ok(stream)
}

/// `GET /json/list` -> the first target's `webSocketDebuggerUrl`.
fn debugger_url(port: u16, timeout: Duration, connected: &dyn Fn(&TcpStream)) -> Result<String, InjectError> {
    let mut stream = connect_stream(port, timeout)?;
    connected(&stream);
    write!(stream, "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(InjectError::Connect)?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    let body = loop {
        let n = stream.read(&mut chunk).map_err(InjectError::Connect)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(body) = complete_body(&buf, n == 0)? {
            break body;
        }
        if n == 0 || buf.len() > 1 << 20 {
            return Err(InjectError::BadList);
        }
    };
    let targets: Vec<Target> = serde_json::from_slice(body).map_err(InjectError::Protocol)?;
    targets.into_iter().find_map(|t| t.ws_url).ok_or(InjectError::BadList)
}

/// The body of a complete HTTP response in `buf`, `None` while incomplete.
fn complete_body(buf: &[u8], eof: bool) -> Result<Option<&[u8]>, InjectError> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(InjectError::BadList),
    };
    if resp.code != Some(200) {
        return Err(InjectError::BadList);
    }
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
    let body = &buf[head..];
    Ok(match len {
        Some(len) if body.len() >= len => Some(&body[..len]),
        Some(_) => None,
        None => eof.then_some(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigusr1_from_status() {
        // Node.js catches SIGUSR1 (bit 10 -> 0x200) among others.
        assert!(sigusr1_caught("Name:\tnode\nSigCgt:\t0000000188004602\n"));
        // --disable-sigusr1: not caught.
        assert!(!sigusr1_caught("Name:\tnode\nSigCgt:\t0000000188004402\n"));
        assert!(!sigusr1_caught("garbage"));
    }

    #[test]
    fn json_list_body() {
        let full = b"HTTP/1.0 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: 2\r\n\r\n[]";
        assert_eq!(complete_body(full, false).unwrap(), Some(&b"[]"[..]));
        assert_eq!(complete_body(&full[..full.len() - 1], false).unwrap(), None);
        assert_eq!(complete_body(b"HTTP/1.1 200 OK\r\n", false).unwrap(), None);
        assert!(complete_body(b"HTTP/1.1 404 Not Found\r\n\r\n", true).is_err());
        assert_eq!(complete_body(b"HTTP/1.1 200 OK\r\n\r\n[1]", true).unwrap(), Some(&b"[1]"[..]));
    }
}
