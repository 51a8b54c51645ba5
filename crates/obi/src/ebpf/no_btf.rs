//! The no-BTF mode: on a kernel without BTF (no `/sys/kernel/btf/vmlinux`,
//! no `OTEL_EBPF_BTF_PATH`), or when told to ignore the kernel's BTF, the
//! agent loads a second build of the same programs (`-DOBI_NO_BTF`, see
//! `bpf/include/obi/fd_sockets.bpf.h`) that reads no kernel structure: it
//! knows sockets by descriptor from the accept/connect/close syscalls and
//! their addresses from the `sock:inet_sock_set_state` tracepoint.
//!
//! aya applies no CO-RE relocation when it is given no target BTF (the
//! offsets stay those of the vmlinux.h the object was built with), so this
//! build has none at all: `bpf/scripts/build.sh` refuses it otherwise.

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::abi;

/// Where CO-RE gets the kernel's types from, or that it does without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BtfSource {
    /// `/sys/kernel/btf/vmlinux`
    Kernel,
    /// `OTEL_EBPF_BTF_PATH`
    File(PathBuf),
    /// The no-BTF build; `forced`: by `OTEL_EBPF_BTF_IGNORE_KERNEL`, not
    /// because the kernel has none.
    None { forced: bool },
}

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

impl BtfSource {
    pub(crate) fn choose(btf_path: Option<&Path>, ignore_kernel: bool) -> BtfSource {
        Self::choose_with(btf_path, ignore_kernel, Path::new(KERNEL_BTF).is_file())
    }

    fn choose_with(btf_path: Option<&Path>, ignore_kernel: bool, kernel_has_btf: bool) -> BtfSource {
        match btf_path {
            Some(p) => BtfSource::File(p.to_path_buf()),
            None if ignore_kernel => BtfSource::None { forced: true },
            None if kernel_has_btf => BtfSource::Kernel,
            None => BtfSource::None { forced: false },
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            BtfSource::Kernel => KERNEL_BTF.to_string(),
            BtfSource::File(p) => format!("{} (OTEL_EBPF_BTF_PATH)", p.display()),
            BtfSource::None { forced: true } => {
                "none: the kernel's BTF is ignored (OTEL_EBPF_BTF_IGNORE_KERNEL)".into()
            }
            BtfSource::None { forced: false } => format!("none: no {KERNEL_BTF} and no OTEL_EBPF_BTF_PATH"),
        }
    }
}

/// What the no-BTF mode cannot do, said once at start and by `obi check`.
pub(crate) const LOST: &str = "forked children are traced only once discovery finds them (no fork hook); \
a socket is known by the descriptor accept/connect returned, so copies made by dup or inherited across fork \
are not traced (a process chosen later has its open connections read from /proc) and closing one copy ends \
the connection; a connection accepted with a NULL address (Node.js, Mosquitto) is named by its first read, \
so what the server sends before it reads is not reported; \"in queue\" time \
only for a connection's first request; libssl loaded after a process started is not probed; a TLS session tied to a NULL-address connection \
before its first read may lack its addresses; exec events carry no parent (read from /proc); the kernel side \
ends a process when its main thread exits";

/// Programs that read kernel structures and are not in the no-BTF
/// object, with what their absence costs (also in [`LOST`]).
pub(crate) const NEEDS_BTF: &[(&str, &str)] = &[
    ("obi_sched_fork", "forked children traced at once (pre-fork and fork-per-connection servers)"),
    ("obi_sk_data_ready", "queue time of keep-alive requests after the first"),
    ("obi_enter_mmap", "TLS probes for libssl loaded after the process started"),
];

/// Optional hooks of the normal build that the no-BTF build cannot do
/// without: sock:inet_sock_set_state names the sockets connect() creates
/// and the addresses of every connection.
pub(crate) const REQUIRED: &[&str] = &["obi_sock_state"];

/// Established TCP sockets of a process, by descriptor: what it had before
/// it was traced, which no accept or connect will announce.
pub(crate) fn existing_sockets(pid: u32) -> Vec<(u32, u64, abi::ConnTuple)> {
    let mut by_inode = HashMap::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        if let Ok(data) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
            parse_established(&data, v6, &mut by_inode);
        }
    }
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(target) = fs::read_link(entry.path()) else { continue };
        let Some(ino) = socket_inode(target.as_os_str().as_encoded_bytes()) else { continue };
        if let Some(tuple) = by_inode.get(&ino) {
            out.push((fd, ino, *tuple));
        }
    }
    out
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &[u8]) -> Option<u64> {
    let rest = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// `st` of an established socket in `/proc/net/tcp`.
const TCP_ESTABLISHED: &str = "01";
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Established sockets of a `/proc/net/tcp` (or `tcp6`) table by inode.
fn parse_established(data: &str, v6: bool, out: &mut HashMap<u64, abi::ConnTuple>) {
    // Header first; then `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`.
    for line in data.lines().skip(1) {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 10 || f[3] != TCP_ESTABLISHED {
            continue;
        }
        let (Some((laddr, lport)), Some((raddr, rport)), Ok(ino)) =
            (parse_endpoint(f[1]), parse_endpoint(f[2]), f[9].parse::<u64>())
        else {
            continue;
        };
        if ino == 0 {
            continue;
        }
        let tuple = abi::ConnTuple { laddr, raddr, lport, rport, family: if v6 { AF_INET6 } else { AF_INET }, _pad: 0 };
        out.insert(ino, tuple);
    }
}

/// `0100007F:1F90` (or 32 hex digits for IPv6) -> (IPv6 or IPv4-mapped
/// address, port). The kernel prints each 32-bit word of the address as a
/// number in its own byte order.
fn parse_endpoint(s: &str) -> Option<([u8; 16], u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = [0u8; 16];
    match addr.len() {
        8 => {
            let word = u32::from_str_radix(addr, 16).ok()?.to_ne_bytes();
            bytes = Ipv4Addr::from(word).to_ipv6_mapped().octets();
        }
        32 => {
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
        }
        _ => return None,
    }
    Some((bytes, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn the_kernels_btf_is_used_unless_a_file_is_given_or_it_is_ignored() {
        let file = Some(Path::new("/btf"));
        assert_eq!(BtfSource::choose_with(file, true, true), BtfSource::File("/btf".into()));
        assert_eq!(BtfSource::choose_with(None, false, true), BtfSource::Kernel);
        assert_eq!(BtfSource::choose_with(None, true, true), BtfSource::None { forced: true });
        assert_eq!(BtfSource::choose_with(None, false, false), BtfSource::None { forced: false });
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn established_sockets_of_both_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1\n";
        let v6 = "  sl  local_address                         remote_address                        st\n\
   0: 0000000000000000FFFF00000100007F:1F91 0000000000000000FFFF00000100007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n\
   1: 00000000000000000000000001000000:1F92 00000000000000000000000001000000:C352 01 00000000:00000000 00:00000000 00000000     0        0 444 1\n";
        let mut m = HashMap::new();
        parse_established(v4, false, &mut m);
        parse_established(v6, true, &mut m);
        assert!(!m.contains_key(&111), "listening sockets are not connections");
        let loopback4: [u8; 16] = Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets();
        let t = m[&222];
        assert_eq!((t.laddr, t.lport, t.raddr, t.rport, t.family), (loopback4, 8080, loopback4, 50000, AF_INET));
        let t = m[&333];
        assert_eq!((t.laddr, t.lport, t.rport, t.family), (loopback4, 8081, 50001, AF_INET6));
        let t = m[&444];
        assert_eq!((t.laddr, t.lport), (Ipv6Addr::LOCALHOST.octets(), 8082));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let mut m = HashMap::new();
        parse_established("header\n0: zz:1F90 0100007F:C350 01 a b c d e 1\nshort\n", false, &mut m);
        assert!(m.is_empty());
    }
}
