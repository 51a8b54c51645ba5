//! Fast `/proc` scanning: the few facts about a process that discovery needs.
//!
//! Everything here tolerates processes vanishing mid-read: any error means
//! "skip this process" and is reported as `None`, never as a panic.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

/// What discovery knows about one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProcessInfo {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    /// Target of `/proc/<pid>/exe` (as seen in the process's mount
    /// namespace), without the ` (deleted)` suffix.
    pub(crate) exe_path: PathBuf,
    /// Inode of the executable file.
    pub(crate) exe_ino: u64,
    /// Device of the executable file (with `exe_ino`, identifies the binary).
    pub(crate) exe_dev: u64,
    /// `argv`, from `/proc/<pid>/cmdline`.
    pub(crate) cmdline: Vec<String>,
    /// `comm` from `/proc/<pid>/stat` (at most 15 bytes, set by the process).
    pub(crate) comm: String,
    /// Sorted, deduplicated local ports of the process's TCP/TCP6 sockets
    /// (listening and connected). Empty unless read with ports.
    pub(crate) local_ports: Vec<u16>,
    /// Start time since boot in clock ticks (field 22 of `stat`). With the
    /// pid it identifies a process across pid reuse.
    pub(crate) start_time_ticks: u64,
    /// Inode of the process's network namespace (0 when unknown).
    pub(crate) net_ns_ino: u64,
}

impl ProcessInfo {
    /// The command line joined by spaces (what `cmd_args` globs match).
    pub(crate) fn cmdline_joined(&self) -> String {
        self.cmdline.join(" ")
    }
}

/// Local port of every TCP socket of one network namespace, by socket inode.
#[derive(Debug, Default)]
struct NetTable {
    by_inode: HashMap<u64, u16>,
    /// Whether any socket's port passes the scan's port filter.
    has_relevant: bool,
}

/// A predicate over ports, shared by the whole scan.
pub(crate) type PortFilter = Arc<dyn Fn(u16) -> bool + Send + Sync>;

/// State shared by all the reads of one scan: parsed `net/tcp{,6}` tables per
/// network namespace (most processes share one).
#[derive(Default)]
pub(crate) struct ScanContext {
    net_tables: HashMap<u64, Arc<NetTable>>,
    port_filter: Option<PortFilter>,
}

impl ScanContext {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Only ports passing `filter` can matter to the caller: processes whose
    /// network namespace has no socket with such a port may get no
    /// `local_ports` at all (their file descriptors are not even listed).
    /// When a namespace does have one, `local_ports` is complete.
    pub(crate) fn with_port_filter(filter: PortFilter) -> Self {
        ScanContext { net_tables: HashMap::new(), port_filter: Some(filter) }
    }

    fn cached_net_table(&self, net_ns_ino: u64) -> Option<Arc<NetTable>> {
        if net_ns_ino == 0 { None } else { self.net_tables.get(&net_ns_ino).cloned() }
    }

    fn net_table(&mut self, pid: u32, net_ns_ino: u64) -> Arc<NetTable> {
        if let Some(t) = self.cached_net_table(net_ns_ino) {
            return t;
        }
        let mut table = NetTable::default();
        for file in ["tcp", "tcp6"] {
            if let Ok(data) = read_proc_file(&format!("/proc/{pid}/net/{file}"), 64 * 1024) {
                parse_net_tcp(&data, &mut table.by_inode);
            }
        }
        table.has_relevant = match &self.port_filter {
            None => true,
            Some(f) => table.by_inode.values().any(|p| f(*p)),
        };
        let table = Arc::new(table);
        if net_ns_ino != 0 {
            self.net_tables.insert(net_ns_ino, table.clone());
        }
        table
    }
}

/// All numeric entries of `/proc`, in ascending order.
pub(crate) fn list_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<u32> =
        dir.filter_map(|e| e.ok()).filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())).collect();
    pids.sort_unstable();
    pids
}

/// Reads one process. `None` for kernel threads (no executable), zombies and
/// processes that vanished or can't be read.
pub(crate) fn read_process(pid: u32, with_ports: bool) -> Option<ProcessInfo> {
    read_process_with(&mut ScanContext::new(), pid, with_ports)
}

/// Reads of a process that exec'd while being read, before giving up (the
/// exec's own trigger reads it again).
const EXEC_RACE_RETRIES: usize = 3;

/// Like [`read_process`], sharing parsed socket tables through `ctx`.
///
/// A process can exec while it is read: its executable and its command line
/// must come from the same program (a Python launcher read as it exec'd
/// `busybox httpd` had Python's executable and busybox's arguments, and was
/// named `httpd` by the Python rule). So the executable is read again at the
/// end, and the whole read repeated when it changed.
pub(crate) fn read_process_with(ctx: &mut ScanContext, pid: u32, with_ports: bool) -> Option<ProcessInfo> {
    for _ in 0..EXEC_RACE_RETRIES {
        let info = read_once(ctx, pid, with_ports)?;
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let meta = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
        if strip_deleted(exe) == info.exe_path && (meta.ino(), meta.dev()) == (info.exe_ino, info.exe_dev) {
            return Some(info);
        }
    }
    None
}

fn read_once(ctx: &mut ScanContext, pid: u32, with_ports: bool) -> Option<ProcessInfo> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe_path = strip_deleted(exe);
    let meta = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    let stat = read_proc_file(&format!("/proc/{pid}/stat"), 1024).ok()?;
    let (comm, ppid, start_time_ticks) = parse_stat(&stat)?;
    let cmdline =
        read_proc_file(&format!("/proc/{pid}/cmdline"), 4096).map(|b| parse_nul_separated(&b)).unwrap_or_default();
    let mut info = ProcessInfo {
        pid,
        ppid,
        exe_path,
        exe_ino: meta.ino(),
        exe_dev: meta.dev(),
        cmdline,
        comm,
        local_ports: Vec::new(),
        start_time_ticks,
        net_ns_ino: 0,
    };
    if with_ports {
        info.net_ns_ino = fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino()).unwrap_or(0);
        info.local_ports = local_ports(ctx, pid, info.net_ns_ino);
    }
    Some(info)
}

/// Whether `pid` still runs a program we could read: false once it has
/// exited, including while it waits to be reaped.
pub(crate) fn has_image(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok()
}

/// Reads a /proc file without querying its size (proc files report 0),
/// starting with a buffer of `initial_capacity` bytes. Reads until end of file:
/// seq_file-backed files (`net/tcp`, `maps`) return at most a page per read.
pub(crate) fn read_proc_file(path: &str, initial_capacity: usize) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; initial_capacity.max(64)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

fn strip_deleted(p: PathBuf) -> PathBuf {
    match p.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => p,
    }
}

fn local_ports(ctx: &mut ScanContext, pid: u32, net_ns_ino: u64) -> Vec<u16> {
    // With the namespace's table at hand, a namespace without any relevant
    // port spares listing the descriptors. Without it, descriptors come first:
    // a process without sockets then spares reading the table, which is the
    // expensive part (the kernel walks its whole socket hash).
    let cached = ctx.cached_net_table(net_ns_ino);
    if let Some(t) = &cached
        && (t.by_inode.is_empty() || !t.has_relevant)
    {
        return Vec::new();
    }
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return Vec::new();
    }
    let table = match cached {
        Some(t) => t,
        None => ctx.net_table(pid, net_ns_ino),
    };
    if !table.has_relevant {
        return Vec::new();
    }
    let mut ports: Vec<u16> = inodes.iter().filter_map(|ino| table.by_inode.get(ino).copied()).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Inodes of the process's sockets (`/proc/<pid>/fd/*` -> `socket:[ino]`).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|entry| {
            let target = fs::read_link(entry.path()).ok()?;
            socket_inode(target.as_os_str().as_encoded_bytes())
        })
        .collect()
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Parses `/proc/<pid>/stat`: (comm, ppid, starttime). `comm` may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(data: &[u8]) -> Option<(String, u32, u64)> {
    let open = data.iter().position(|&b| b == b'(')?;
    let close = data.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&data[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(data.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the state; ppid is field 4 and starttime field 22.
    let ppid = fields.nth(1)?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// Splits NUL-separated strings (`cmdline`), dropping the trailing empty one.
pub(crate) fn parse_nul_separated(data: &[u8]) -> Vec<String> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

/// Listening TCP sockets of a process: (socket inode, local port).
pub(crate) fn listening_sockets(pid: u32) -> Vec<(u64, u16)> {
    let inodes = socket_inodes(pid);
    let mut table = HashMap::new();
    for file in ["tcp", "tcp6"] {
        if let Ok(data) = read_proc_file(&format!("/proc/{pid}/net/{file}"), 64 * 1024) {
            parse_net_tcp_in_state(&data, Some(TCP_LISTEN), &mut table);
        }
    }
    inodes.iter().filter_map(|ino| table.get(ino).map(|p| (*ino, *p))).collect()
}

/// `st` of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Parses a `/proc/net/tcp` or `tcp6` table into `inode -> local port`.
fn parse_net_tcp(data: &[u8], out: &mut HashMap<u64, u16>) {
    parse_net_tcp_in_state(data, None, out)
}

/// Like [`parse_net_tcp`], keeping only sockets in `state` when given.
fn parse_net_tcp_in_state(data: &[u8], state: Option<&str>, out: &mut HashMap<u64, u16>) {
    // Header line first; then `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`.
    for line in data.split(|&b| b == b'\n').skip(1) {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        let mut fields = line.split_ascii_whitespace();
        let Some(local) = fields.nth(1) else { continue };
        let Some(st) = fields.nth(1) else { continue };
        if state.is_some_and(|want| want != st) {
            continue;
        }
        let Some(inode) = fields.nth(5) else { continue };
        let Some((_, port_hex)) = local.rsplit_once(':') else { continue };
        let (Ok(port), Ok(inode)) = (u16::from_str_radix(port_hex, 16), inode.parse::<u64>()) else { continue };
        if inode != 0 {
            out.insert(inode, port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let line = b"1234 (my (weird) proc) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 1000 200 18446744073709551615";
        let (comm, ppid, start) = parse_stat(line).unwrap();
        assert_eq!(comm, "my (weird) proc");
        assert_eq!(ppid, 77);
        assert_eq!(start, 98765);
        assert!(parse_stat(b"garbage").is_none());
    }

    #[test]
    fn parses_net_tcp() {
        let data = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 100 0 0 10 0\n";
        let mut m = HashMap::new();
        parse_net_tcp(data, &mut m);
        assert_eq!(m.len(), 1);
        assert_eq!(m[&31337], 8080);
        let v6 = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n";
        parse_net_tcp(v6, &mut m);
        assert_eq!(m[&4242], 80);
    }

    #[test]
    fn net_tcp_by_state() {
        let data = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:240D 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0\n";
        let mut m = HashMap::new();
        parse_net_tcp_in_state(data, Some(TCP_LISTEN), &mut m);
        assert_eq!(m, HashMap::from([(111, 9229)]));
        parse_net_tcp(data, &mut m);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[123]"), Some(123));
        assert_eq!(socket_inode(b"pipe:[123]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let p = read_process(me, true).expect("own process");
        assert_eq!(p.pid, me);
        assert_eq!(p.exe_path, std::env::current_exe().unwrap());
        assert!(p.exe_ino != 0);
        assert!(p.start_time_ticks > 0);
        assert!(p.net_ns_ino != 0);
        assert!(!p.cmdline.is_empty());
        assert!(list_pids().contains(&me));
    }

    #[test]
    fn many_sockets_are_all_seen() {
        // More than fits in one page of /proc/net/tcp (27 lines per read).
        let listeners: Vec<std::net::TcpListener> =
            (0..120).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let p = read_process(std::process::id(), true).unwrap();
        for l in listeners.iter().chain(v6.iter()) {
            let port = l.local_addr().unwrap().port();
            assert!(p.local_ports.contains(&port), "port {port} missing");
        }
        let mut sorted = p.local_ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, p.local_ports);
    }

    #[test]
    fn kernel_threads_are_skipped() {
        // kthreadd is pid 2 on every Linux host (absent in a pid namespace).
        if let Ok(stat) = fs::read_to_string("/proc/2/stat")
            && stat.contains("(kthreadd)")
        {
            assert!(read_process(2, true).is_none());
        }
        assert!(read_process(u32::MAX - 1, true).is_none());
    }
}
