//! Go programs: what the Go probes need to know about a binary, read from
//! the binary itself (no debug information, no help from the user).
//!
//! For a process discovery found to be Go, [`inspect`] reads the Go release
//! from `.go.buildinfo`, looks up the struct offsets for that release in
//! the offset table (`offsets.json`), and finds the functions the probes
//! attach to in `.symtab`, or in the Go function table `.gopclntab` when the
//! binary is stripped (`-ldflags='-s -w'`). [`Registry`] does this for each
//! instrumented Go process and logs the outcome: what was found, or why the
//! binary cannot be handled and that its syscall-level spans still work.

mod buildinfo;
mod elf;
mod grpc;
mod offsets;
mod pclntab;
mod registry;
mod returns;
mod version;

#[cfg(test)]
mod tests;

use std::path::Path;

use object::Object;

pub(crate) use grpc::{GrpcClient, GrpcError, GrpcOffsets, NEW_STREAM as GRPC_NEW_STREAM};
pub(crate) use offsets::GoOffsets;
use offsets::NotCovered;
pub(crate) use pclntab::TableFormat;
pub(crate) use registry::Registry;
pub(crate) use version::GoVersion;

/// The functions looked up in each Go binary. The probes attach to
/// `(*conn).serve`, `(*persistConn).roundTrip` and crypto/tls's
/// `(*Conn).Read` and `(*Conn).Write` (`crate::ebpf::golang`);
/// the runtime ones, which every Go program has, are what following
/// goroutine creation would use (measured and not kept: docs/go.md) and
/// confirm that the function table was read right. The net/http and
/// crypto/tls ones are only in programs that use them.
pub(crate) const PROBED_FUNCTIONS: [&str; 7] = [
    // Goroutine creation: who created whom.
    "runtime.newproc1",
    // Goroutine exit.
    "runtime.goexit1",
    // A net/http server connection's goroutine (one per connection).
    "net/http.(*conn).serve",
    // A net/http client request on a kept or new connection.
    "net/http.(*persistConn).roundTrip",
    // A net/http server handler call (one per request).
    "net/http.serverHandler.ServeHTTP",
    // Go's TLS: the plaintext an application reads (at the returns) and
    // writes (at the entry).
    "crypto/tls.(*Conn).Read",
    "crypto/tls.(*Conn).Write",
];
/// Of [`PROBED_FUNCTIONS`], the ones every Go binary has: missing means
/// the table was misread.
const REQUIRED_FUNCTIONS: [&str; 2] = ["runtime.newproc1", "runtime.goexit1"];
/// Of [`PROBED_FUNCTIONS`], the ones whose `ret` instructions are found
/// (the new goroutine is `newproc1`'s result; the bytes `Read` returned).
/// (grpc-go's `NewStream`, looked up too, returns the new client stream.)
const RETURN_PROBED: [&str; 3] = ["runtime.newproc1", "crypto/tls.(*Conn).Read", grpc::NEW_STREAM];

/// Where the function addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolSource {
    Symtab,
    Pclntab(TableFormat),
}

/// One function the probes attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoFunction {
    pub(crate) name: &'static str,
    /// Virtual address of the first instruction.
    pub(crate) entry: u64,
    /// Virtual address just past the last byte.
    pub(crate) end: u64,
    /// File offset of `entry` (what a uprobe is placed by).
    pub(crate) file_offset: u64,
    /// File offsets of its `ret` instructions, for the functions whose
    /// returns are probed (empty for the others).
    pub(crate) returns: Vec<u64>,
}

/// A Go binary the probes can handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoProgram {
    pub(crate) version: GoVersion,
    pub(crate) offsets: GoOffsets,
    pub(crate) source: SymbolSource,
    /// The [`PROBED_FUNCTIONS`] found, in that order, then grpc-go's
    /// [`GRPC_NEW_STREAM`] when the binary has it.
    pub(crate) functions: Vec<GoFunction>,
    /// grpc-go's client: `None` when the binary has no `NewStream`; an
    /// error when its release or offsets are not known (no gRPC probe).
    pub(crate) grpc: Option<Result<GrpcClient, GrpcError>>,
}

/// Why a binary cannot be handled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InspectError {
    #[error("cannot read the executable: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a readable ELF file: {0}")]
    Elf(#[from] object::Error),
    #[error("{0:?} binaries are not supported (only x86-64)")]
    Architecture(object::Architecture),
    #[error("no .go.buildinfo section (not a Go binary, or built by Go older than 1.13)")]
    NoBuildInfo,
    #[error("Go build information: {0}")]
    BuildInfo(#[from] buildinfo::BuildInfoError),
    #[error("Go version: {0}")]
    Version(#[from] version::VersionError),
    #[error("{0}")]
    NotCovered(#[from] NotCovered),
    #[error("the built-in offset table is broken: {0}")]
    Offsets(String),
    #[error("no symbol table and no .gopclntab section: function addresses unknown")]
    NoFunctionTable,
    #[error("Go function table: {0}")]
    Pclntab(#[from] pclntab::PclntabError),
    #[error("function {0} not found")]
    MissingFunction(&'static str),
    #[error("function {0} lies outside the loaded segments")]
    NotLoaded(&'static str),
    #[error("function {0}: {1}")]
    Returns(&'static str, #[source] returns::ReturnsError),
}

/// Reads what the Go probes need from the executable at `path`.
pub(crate) fn inspect(path: &Path) -> Result<GoProgram, InspectError> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the mapping is read-only and dropped before returning; a file
    // truncated underneath us would at worst make parsing fail.
    let map = unsafe { memmap2::Mmap::map(&file) }?;
    let elf = object::File::parse(&*map)?;
    if elf.architecture() != object::Architecture::X86_64 || !elf.is_little_endian() || !elf.is_64() {
        return Err(InspectError::Architecture(elf.architecture()));
    }
    let (_, info) = elf::section(&elf, ".go.buildinfo").ok_or(InspectError::NoBuildInfo)?;
    let version_string = buildinfo::version(info, |addr, len| elf::read_at(&elf, addr, len))?;
    let version = GoVersion::parse(version_string)?;
    let table = offsets::table().map_err(|e| InspectError::Offsets(e.to_string()))?;
    let offsets = table.for_version(version)?;

    let names: Vec<&'static str> = PROBED_FUNCTIONS.iter().copied().chain([grpc::NEW_STREAM]).collect();
    let (source, found) = match elf::symtab_find(&elf, &names) {
        Some(found) => (SymbolSource::Symtab, found),
        None => {
            let (_, data) = elf::section(&elf, ".gopclntab").ok_or(InspectError::NoFunctionTable)?;
            let text = elf::section(&elf, ".text").map_or(0, |(addr, _)| addr);
            let pcln = pclntab::Pclntab::parse(data, text)?;
            (SymbolSource::Pclntab(pcln.format), pcln.find(&names))
        }
    };
    let mut functions = Vec::with_capacity(names.len());
    let mut grpc = None;
    for (name, range) in names.iter().zip(found) {
        let Some(range) = range else {
            if REQUIRED_FUNCTIONS.contains(name) {
                return Err(InspectError::MissingFunction(name));
            }
            continue;
        };
        let file_offset = elf::file_offset(&elf, range.entry).ok_or(InspectError::NotLoaded(name))?;
        let mut returns = Vec::new();
        if RETURN_PROBED.contains(name) {
            let code = usize::try_from(file_offset)
                .ok()
                .zip(usize::try_from(range.end - range.entry).ok())
                .and_then(|(at, len)| map.get(at..at.checked_add(len)?))
                .ok_or(InspectError::NotLoaded(name))?;
            let found = match returns::return_addresses(code, range.entry) {
                Ok(found) => found,
                // The gRPC probe alone is given up: net/http and TLS do not need it.
                Err(e) if *name == grpc::NEW_STREAM => {
                    grpc = Some(Err(GrpcError::Returns(e.to_string())));
                    continue;
                }
                Err(e) => return Err(InspectError::Returns(name, e)),
            };
            returns = found.into_iter().map(|ret| file_offset + (ret - range.entry)).collect();
        }
        if *name == grpc::NEW_STREAM {
            grpc = Some(grpc::client(&elf));
        }
        functions.push(GoFunction { name, entry: range.entry, end: range.end, file_offset, returns });
    }
    Ok(GoProgram { version, offsets, source, functions, grpc })
}
