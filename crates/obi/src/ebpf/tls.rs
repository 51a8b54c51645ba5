//! OpenSSL uprobes: finds the libssl (or a binary with OpenSSL linked in,
//! like `node`) a process uses, resolves SSL_read/SSL_write(_ex) once per
//! file, and attaches per process so untraced processes never trap.
//!
//! Every uprobe costs a kernel grace period to remove (~0.1 s here, and the
//! kernel does them one at a time): 50 nginx workers with 8 probes each took
//! 46 s to detach. So once `SHARE_AFTER` traced processes use the same file,
//! that file gets one set of probes for all processes instead (the programs
//! check the pid first); untraced processes using that file then pay a trap
//! per SSL call, which is the price of bounded attach and detach work.
//!
//! Probes go through the kernel's uprobe PMU; where it refuses this agent
//! (no CAP_SYS_ADMIN), through tracefs instead ([`tracefs_uprobe`]).

mod tracefs_uprobe;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeLink, UProbeScope};
use aya::programs::{ProgramError, UProbe};
use object::{Object, ObjectSegment, ObjectSymbol};
use std::os::fd::AsFd;

/// Errors of [`TlsProbes`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("program {0} missing")]
    MissingProgram(&'static str),
    #[error("loading {program}")]
    Load {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("uprobe {program} on {}+{offset:#x}", target.display())]
    Attach {
        program: &'static str,
        target: PathBuf,
        offset: u64,
        /// Boxed: aya's error is large and this enum is returned often.
        #[source]
        source: Box<ProgramError>,
    },
    #[error("uprobe {program} on {}+{offset:#x} through tracefs", target.display())]
    AttachTracefs {
        program: &'static str,
        target: PathBuf,
        offset: u64,
        #[source]
        source: tracefs_uprobe::TracefsUprobeError,
    },
    #[error("pid 0")]
    PidZero,
    #[error("opening {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping {}", path.display())]
    Map {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing the ELF file {}", path.display())]
    Elf {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
}

type Result<T, E = TlsError> = std::result::Result<T, E>;

/// (function, entry program). Every function also gets the shared return probe.
const FUNCTIONS: &[(&str, &str)] = &[
    ("SSL_write", "obi_ssl_write"),
    ("SSL_write_ex", "obi_ssl_write_ex"),
    ("SSL_read", "obi_ssl_read"),
    ("SSL_read_ex", "obi_ssl_read_ex"),
];
const RETURN_PROGRAM: &str = "obi_ssl_ret";

/// One attached probe, whichever way the kernel allowed. Dropping it detaches.
enum Link {
    Pmu(#[allow(dead_code)] UProbeLink),
    Tracefs(#[allow(dead_code)] tracefs_uprobe::TracefsUprobe),
}

/// A thread that drops the uprobe links it is sent.
struct Reaper {
    tx: std::sync::mpsc::Sender<Vec<Link>>,
    thread: std::thread::JoinHandle<()>,
}

impl Reaper {
    fn start() -> Reaper {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<Link>>();
        let thread = std::thread::Builder::new()
            .name("obi-uprobe-detach".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .expect("spawn uprobe detach thread");
        Reaper { tx, thread }
    }
}

impl TlsProbes {
    /// Every link still attached, for closing at shutdown; waits for the
    /// background closer first.
    pub(crate) fn take_links(&mut self) -> Vec<super::detach::Link> {
        if let Some(r) = self.reaper.take() {
            drop(r.tx);
            let _ = r.thread.join();
        }
        let per_process = self.links.drain().flat_map(|(_, links)| links.into_iter().map(|(_, l)| l));
        let shared = self.shared.drain().flat_map(|(_, (links, _))| links);
        per_process.chain(shared).map(|l| Box::new(l) as super::detach::Link).collect()
    }
}

impl Drop for TlsProbes {
    /// Shutdown: waits for the background closer, then closes the rest.
    fn drop(&mut self) {
        if let Some(r) = self.reaper.take() {
            drop(r.tx);
            let _ = r.thread.join();
        }
    }
}

/// Attaches the entry and return probes of every SSL function in `target`.
/// `pmu_refused` remembers that the kernel refused the uprobe PMU, so that
/// later probes go through tracefs directly.
fn attach_all(
    ebpf: &mut Ebpf,
    target: &Path,
    offsets: &Offsets,
    scope: UProbeScope,
    pmu_refused: &mut bool,
) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for (_func, entry, off) in &offsets.by_function {
        for program in [*entry, RETURN_PROGRAM] {
            let attach_error = |source| TlsError::Attach {
                program,
                target: target.to_path_buf(),
                offset: *off,
                source: Box::new(source),
            };
            let p: &mut UProbe =
                ebpf.program_mut(program).expect("loaded before attaching").try_into().map_err(attach_error)?;
            if !*pmu_refused {
                match p.attach(UProbeAttachLocation::AbsoluteOffset(*off), target, scope) {
                    Ok(id) => {
                        links.push(Link::Pmu(p.take_link(id).map_err(attach_error)?));
                        continue;
                    }
                    Err(err) if is_pmu_refusal(&err) => {
                        tracing::debug!(
                            component = "ebpf.TLS",
                            "the uprobe PMU is refused (EACCES): probing through tracefs"
                        );
                        *pmu_refused = true;
                    }
                    Err(err) => return Err(attach_error(err)),
                }
            }
            let pid = match scope {
                UProbeScope::OneProcess(pid) => Some(pid.get()),
                _ => None,
            };
            let fd = p.fd().map_err(attach_error)?;
            let probe =
                tracefs_uprobe::attach(fd.as_fd(), target, *off, program == RETURN_PROGRAM, pid).map_err(|source| {
                    TlsError::AttachTracefs { program, target: target.to_path_buf(), offset: *off, source }
                })?;
            links.push(Link::Tracefs(probe));
        }
    }
    Ok(links)
}

/// perf_event_open of the uprobe PMU answered EACCES: the kernel's
/// capability gate, not a missing file or a bad offset.
fn is_pmu_refusal(err: &ProgramError) -> bool {
    matches!(err, ProgramError::SyscallError(e)
        if e.call == "perf_event_open" && e.io_error.raw_os_error() == Some(libc::EACCES))
}

fn file_key(path: &Path) -> Option<FileKey> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// File offsets of the SSL functions in one file.
#[derive(Debug, Clone, Default)]
struct Offsets {
    by_function: Vec<(&'static str, &'static str, u64)>,
}

/// Traced processes sharing a file before it is probed for all processes.
const SHARE_AFTER: usize = 4;

/// (device, inode) of a probed file.
type FileKey = (u64, u64);

pub(crate) struct TlsProbes {
    loaded: bool,
    /// Keyed by (device, inode) of the library file.
    offsets: HashMap<(u64, u64), Option<Offsets>>,
    /// Per-process links, with the file they probe. Dropping one detaches it.
    links: HashMap<u32, Vec<(FileKey, Link)>>,
    /// Files probed for every process, and the traced processes using them.
    shared: HashMap<FileKey, (Vec<Link>, Vec<u32>)>,
    /// Traced processes per file while it is probed per process.
    users: HashMap<FileKey, Vec<u32>>,
    /// Closes the links of processes that went away, off the event loop.
    reaper: Option<Reaper>,
    /// Files already probed per process (a process may map libssl late).
    files: HashMap<u32, Vec<PathBuf>>,
    /// The kernel refused the uprobe PMU: probes go through tracefs.
    pmu_refused: bool,
}

impl Default for TlsProbes {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsProbes {
    pub(crate) fn new() -> Self {
        TlsProbes {
            loaded: false,
            offsets: HashMap::new(),
            links: HashMap::new(),
            shared: HashMap::new(),
            users: HashMap::new(),
            reaper: None,
            files: HashMap::new(),
            pmu_refused: false,
        }
    }

    /// Loads (verifies) the uprobe programs. Done at startup: verification
    /// takes a while and must not stall the event loop later.
    pub(crate) fn load(&mut self, ebpf: &mut Ebpf) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        for name in FUNCTIONS.iter().map(|f| f.1).chain([RETURN_PROGRAM]) {
            let load_error = |source| TlsError::Load { program: name, source };
            let p: &mut UProbe =
                ebpf.program_mut(name).ok_or(TlsError::MissingProgram(name))?.try_into().map_err(load_error)?;
            p.load().map_err(load_error)?;
        }
        self.loaded = true;
        Ok(())
    }

    /// Attaches to every OpenSSL copy `pid` uses. Returns the files probed
    /// (empty when the process does not use OpenSSL).
    pub(crate) fn attach(&mut self, ebpf: &mut Ebpf, pid: u32) -> Result<Vec<PathBuf>> {
        let done = self.files.get(&pid).cloned().unwrap_or_default();
        let targets: Vec<PathBuf> = self.ssl_targets(pid).into_iter().filter(|t| !done.contains(t)).collect();
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        self.load(ebpf)?;
        let mut attached = Vec::new();
        for target in targets {
            let Some(offsets) = self.offsets_for(&target) else { continue };
            let Some(key) = file_key(&target) else { continue };
            if let Some((_, pids)) = self.shared.get_mut(&key) {
                pids.push(pid);
            } else if self.users.get(&key).map_or(0, Vec::len) + 1 >= SHARE_AFTER {
                let links = attach_all(ebpf, &target, &offsets, UProbeScope::AllProcesses, &mut self.pmu_refused)?;
                let mut pids = self.users.remove(&key).unwrap_or_default();
                // Their own probes are now redundant: closed in the background.
                for other in &pids {
                    self.release(*other, Some(key));
                }
                pids.push(pid);
                tracing::debug!(component = "ebpf.TLS", file = %target.display(), processes = pids.len(), "probing the file for all processes");
                self.shared.insert(key, (links, pids));
            } else {
                let one = UProbeScope::OneProcess(NonZeroU32::new(pid).ok_or(TlsError::PidZero)?);
                let links = attach_all(ebpf, &target, &offsets, one, &mut self.pmu_refused)?;
                self.links.entry(pid).or_default().extend(links.into_iter().map(|l| (key, l)));
                self.users.entry(key).or_default().push(pid);
            }
            attached.push(target);
        }
        self.files.entry(pid).or_default().extend(attached.iter().cloned());
        Ok(attached)
    }

    /// Hands the per-process links of `pid` (those on `file`, or all) to the
    /// background closer.
    fn release(&mut self, pid: u32, file: Option<FileKey>) {
        let Some(links) = self.links.get_mut(&pid) else { return };
        let (gone, kept): (Vec<_>, Vec<_>) = links.drain(..).partition(|(k, _)| file.is_none_or(|f| *k == f));
        *links = kept;
        if links.is_empty() {
            self.links.remove(&pid);
        }
        let gone: Vec<Link> = gone.into_iter().map(|(_, l)| l).collect();
        if gone.is_empty() {
            return;
        }
        let reaper = self.reaper.get_or_insert_with(Reaper::start);
        if let Err(std::sync::mpsc::SendError(links)) = reaper.tx.send(gone) {
            drop(links);
        }
    }

    /// Removes the probes of a process that is gone or no longer traced.
    /// Links are closed by a background thread: closing waits for the
    /// kernel, and the event loop must not. File-wide probes stay while a
    /// traced process uses the file.
    pub(crate) fn detach(&mut self, pid: u32) {
        self.files.remove(&pid);
        self.release(pid, None);
        self.users.retain(|_, pids| {
            pids.retain(|p| *p != pid);
            !pids.is_empty()
        });
        let mut unused = Vec::new();
        self.shared.retain(|_, (links, pids)| {
            pids.retain(|p| *p != pid);
            if pids.is_empty() {
                unused.append(links);
            }
            !pids.is_empty()
        });
        if !unused.is_empty() {
            let reaper = self.reaper.get_or_insert_with(Reaper::start);
            let _ = reaper.tx.send(unused);
        }
    }

    /// Files of `pid` that contain OpenSSL: mapped libssl libraries, and the
    /// executable itself when OpenSSL is linked in (node). Cached per file.
    fn ssl_targets(&mut self, pid: u32) -> Vec<PathBuf> {
        let mut out = mapped_libssl(pid);
        if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
            let full = PathBuf::from(format!("/proc/{pid}/root")).join(exe.to_string_lossy().trim_start_matches('/'));
            if self.offsets_for_exe(&full).is_some() {
                out.push(full);
            }
        }
        out
    }

    fn offsets_for_exe(&mut self, path: &Path) -> Option<Offsets> {
        self.cached_offsets(path, false)
    }

    fn offsets_for(&mut self, path: &Path) -> Option<Offsets> {
        self.cached_offsets(path, true)
    }

    fn cached_offsets(&mut self, path: &Path, full: bool) -> Option<Offsets> {
        let key = file_key(path)?;
        self.offsets
            .entry(key)
            .or_insert_with(|| match resolve_offsets_in(path, full) {
                Ok(o) if !o.by_function.is_empty() => Some(o),
                Ok(_) => None,
                Err(err) => {
                    tracing::debug!(component = "ebpf.TLS", file = %path.display(), error = %format!("{:#}", anyhow::Error::new(err)), "no OpenSSL symbols");
                    None
                }
            })
            .clone()
    }
}

/// `libssl.so*`, or `libssl-<hash>.so*`: the copy a Python wheel bundles
/// (psycopg-binary's libpq uses its own).
fn is_libssl(file_name: &str) -> bool {
    file_name.starts_with("libssl.so") || (file_name.starts_with("libssl-") && file_name.contains(".so"))
}

/// Mapped OpenSSL libraries of `pid` (see [`is_libssl`]), through
/// /proc/<pid>/root so containers resolve correctly.
fn mapped_libssl(pid: u32) -> Vec<PathBuf> {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut out: Vec<PathBuf> = Vec::new();
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        for line in maps.lines() {
            let Some(path) = line.split_whitespace().nth(5) else { continue };
            let name = path.rsplit('/').next().unwrap_or("");
            if is_libssl(name) {
                let full = root.join(path.trim_start_matches('/'));
                if !out.contains(&full) {
                    out.push(full);
                }
            }
        }
    }
    out
}

/// `full`: also walk .symtab (libssl files); executables are only checked
/// for exported symbols, which is how node exposes its OpenSSL and is much
/// cheaper than walking a big binary's full symbol table.
fn resolve_offsets_in(path: &Path, full: bool) -> Result<Offsets> {
    let file = std::fs::File::open(path).map_err(|source| TlsError::Open { path: path.to_path_buf(), source })?;
    // SAFETY: the mapping is read-only and dropped before returning; a file
    // truncated underneath us would at worst make parsing fail.
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|source| TlsError::Map { path: path.to_path_buf(), source })?;
    let elf = object::File::parse(&*map).map_err(|source| TlsError::Elf { path: path.to_path_buf(), source })?;
    let mut by_function = Vec::new();
    let symtab = if full { Some(elf.symbols()) } else { None };
    for sym in elf.dynamic_symbols().chain(symtab.into_iter().flatten()) {
        let Ok(name) = sym.name() else { continue };
        let base = name.split('@').next().unwrap_or(name);
        let Some((func, entry)) = FUNCTIONS.iter().find(|(f, _)| *f == base) else { continue };
        if !sym.is_definition() || by_function.iter().any(|(f, _, _)| f == func) {
            continue;
        }
        if let Some(off) = vaddr_to_offset(&elf, sym.address()) {
            by_function.push((*func, *entry, off));
        }
    }
    Ok(Offsets { by_function })
}

fn vaddr_to_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (file_off, file_len) = seg.file_range();
        let start = seg.address();
        (addr >= start && addr < start + file_len).then(|| addr - start + file_off)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_openssl_copies_are_openssl_too() {
        for name in ["libssl.so.3", "libssl.so.1.1", "libssl-a3315354.so.3"] {
            assert!(is_libssl(name), "{name}");
        }
        for name in ["libssl3.so", "libsslx.so", "libcrypto.so.3", "libssl-notes.txt"] {
            assert!(!is_libssl(name), "{name}");
        }
    }

    #[test]
    fn resolves_libssl_functions_to_file_offsets() {
        let lib = Path::new("/lib/x86_64-linux-gnu/libssl.so.3");
        if !lib.exists() {
            return; // not on this distribution
        }
        let o = resolve_offsets_in(lib, true).unwrap();
        let names: Vec<&str> = o.by_function.iter().map(|f| f.0).collect();
        for f in ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"] {
            assert!(names.contains(&f), "{f} missing from {names:?}");
        }
        assert!(o.by_function.iter().all(|f| f.2 > 0));
    }

    #[test]
    fn a_binary_without_openssl_has_no_symbols() {
        assert!(resolve_offsets_in(Path::new("/bin/true"), true).unwrap().by_function.is_empty());
    }
}
