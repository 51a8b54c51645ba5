//! The Go reader on real binaries: the test app (tests/apps/go_fanout.go)
//! built by Debian's Go 1.19 and the newest Go in bookworm-backports (1.23),
//! with and without `-ldflags='-s -w'`, and by Go 1.15 (too old). The
//! toolchains are installed by scripts/install-deps.sh.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use object::{Object, ObjectSection};

use super::*;

/// The Go releases the tests build with: (toolchain directory, `go version`).
const GO_1_19: &str = "/usr/lib/go-1.19";
const GO_1_23: &str = "/usr/lib/go-1.23";
const GO_1_15: &str = "/usr/lib/go-1.15";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Build {
    /// Default flags, DWARF left uncompressed for the offset check.
    Full,
    /// `-ldflags='-s -w'`: no symbol table, no DWARF.
    Stripped,
}

/// Builds the test app once per (toolchain, flags) with
/// tests/apps/build_go.sh and returns its path.
fn built(goroot: &str, build: Build) -> PathBuf {
    built_app("build_go.sh", "fanout", goroot, build)
}

/// The grpc-go test app (tests/apps/go_grpc_fanout), built like [`built`].
fn built_grpc(goroot: &str, build: Build) -> PathBuf {
    built_app("build_go_grpc.sh", "grpc-fanout", goroot, build)
}

/// (app, toolchain, flags) -> the binary.
type Builds = HashMap<(String, String, Build), PathBuf>;

fn built_app(script: &str, app: &str, goroot: &str, build: Build) -> PathBuf {
    static BUILT: OnceLock<Mutex<Builds>> = OnceLock::new();
    let mut done = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = (app.to_string(), goroot.to_string(), build);
    if let Some(p) = done.get(&key) {
        return p.clone();
    }
    let dir = std::env::temp_dir().join("obi-golang-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let release = goroot.rsplit('-').next().unwrap();
    // Same name in every run: the script replaces the file atomically.
    let out = dir.join(format!("{app}-{release}-{build:?}"));
    let ldflags = match build {
        Build::Full => "-compressdwarf=false",
        Build::Stripped => "-s -w",
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps").join(script);
    let status = Command::new(script).args([goroot, ldflags]).arg(&out).status().unwrap();
    assert!(status.success(), "building the Go test app {app} with {goroot} failed");
    done.insert(key, out.clone());
    out
}

/// `go version`'s release for a toolchain, e.g. `go1.19.8`.
fn toolchain_version(goroot: &str) -> GoVersion {
    let out =
        Command::new(Path::new(goroot).join("bin/go")).arg("version").env("GOTOOLCHAIN", "local").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    GoVersion::parse(text.split_whitespace().nth(2).unwrap()).unwrap()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn full_binaries_use_the_symbol_table() {
    for (goroot, format) in [(GO_1_19, TableFormat::Go118), (GO_1_23, TableFormat::Go120)] {
        let path = built(goroot, Build::Full);
        let p = inspect(&path).unwrap();
        assert_eq!(p.version, toolchain_version(goroot));
        assert_eq!(p.source, SymbolSource::Symtab);
        // Every probed function is in the app (it serves and calls HTTP).
        assert_eq!(p.functions.iter().map(|f| f.name).collect::<Vec<_>>(), PROBED_FUNCTIONS);
        // The function table agrees with the symbol table, address for address.
        let data = read(&path);
        let elf = object::File::parse(&*data).unwrap();
        let (_, pcln) = super::elf::section(&elf, ".gopclntab").unwrap();
        let text = super::elf::section(&elf, ".text").unwrap().0;
        let table = pclntab::Pclntab::parse(pcln, text).unwrap();
        assert_eq!(table.format, format);
        assert!(table.len() > 1000, "{} functions", table.len());
        let from_table = table.find(&PROBED_FUNCTIONS);
        for (f, t) in p.functions.iter().zip(from_table) {
            let t = t.unwrap();
            assert_eq!(f.entry, t.entry, "{goroot} {}", f.name);
            // Go pads functions: the table's end may pass the symbol's size.
            assert!(f.end <= t.end && t.end - f.end < 64, "{goroot} {} ends {:#x} vs {:#x}", f.name, f.end, t.end);
            // Decoding up to the table's end (padding included) finds the same returns.
            if !f.returns.is_empty() {
                let code = &data[f.file_offset as usize..][..(t.end - t.entry) as usize];
                let rets = returns::return_addresses(code, t.entry).unwrap();
                let rets: Vec<u64> = rets.into_iter().map(|r| f.file_offset + (r - t.entry)).collect();
                assert_eq!(rets, f.returns, "{goroot} {}", f.name);
            }
        }
    }
}

#[test]
fn stripped_binaries_use_the_function_table() {
    for (goroot, format) in [(GO_1_19, TableFormat::Go118), (GO_1_23, TableFormat::Go120)] {
        let path = built(goroot, Build::Stripped);
        let data = read(&path);
        let elf = object::File::parse(&*data).unwrap();
        assert!(elf.section_by_name(".symtab").is_none(), "-s left a symbol table");
        let p = inspect(&path).unwrap();
        assert_eq!(p.version, toolchain_version(goroot));
        assert_eq!(p.source, SymbolSource::Pclntab(format));
        assert_eq!(p.functions.len(), PROBED_FUNCTIONS.len());
        // Each function starts, at its file offset, with Go's stack check
        // on the g register: `cmp rsp, [r14+0x10]` (after a `lea r12,
        // [rsp-N]` in functions with big frames).
        for f in &p.functions {
            let code = &data[f.file_offset as usize..][..16];
            let stack_check =
                code.windows(4).position(|w| w == [0x3b, 0x66, 0x10, 0x0f] || w == [0x49, 0x3b, 0x66, 0x10]);
            assert!(stack_check.is_some_and(|at| at < 10), "{goroot} {}: {code:02x?}", f.name);
            assert!(f.end > f.entry && f.end - f.entry < 64 * 1024, "{goroot} {}", f.name);
            // Returns found where they are probed, each a `ret` (0xc3)
            // inside the function.
            assert_eq!(f.returns.is_empty(), !RETURN_PROBED.contains(&f.name), "{goroot} {}", f.name);
            for &ret in &f.returns {
                assert_eq!(data[ret as usize], 0xc3, "{goroot} {} at {ret:#x}", f.name);
                assert!(ret > f.file_offset && ret - f.file_offset < f.end - f.entry);
            }
        }
    }
}

#[test]
fn too_old_go_is_refused_with_its_version() {
    let path = built(GO_1_15, Build::Stripped);
    let err = inspect(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Go {} is older than 1.17.0, the oldest release the Go probes support", toolchain_version(GO_1_15))
    );
    // Its function table is the pre-1.16 layout: refused, not misread.
    let data = read(&path);
    let elf = object::File::parse(&*data).unwrap();
    let (_, pcln) = super::elf::section(&elf, ".gopclntab").unwrap();
    assert_eq!(pclntab::Pclntab::parse(pcln, 0).unwrap_err(), pclntab::PclntabError::TooOld);
}

#[test]
fn stripped_binary_without_function_table_is_refused() {
    // Renaming the section (in the section-name table) hides it, as a
    // packer or a broken build would.
    let mut data = read(&built(GO_1_23, Build::Stripped));
    let at = data.windows(11).position(|w| w == b".gopclntab\0").unwrap();
    data[at + 1] = b'x';
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &data).unwrap();
    let err = inspect(f.path()).unwrap_err();
    assert!(matches!(err, InspectError::NoFunctionTable), "{err}");
    assert_eq!(err.to_string(), "no symbol table and no .gopclntab section: function addresses unknown");
}

#[test]
fn non_go_binaries_are_refused() {
    assert!(matches!(inspect(Path::new("/bin/sh")), Err(InspectError::NoBuildInfo)));
    assert!(matches!(inspect(Path::new("/nonexistent/go-app")), Err(InspectError::Io(_))));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b"#!/bin/sh\necho not elf\n").unwrap();
    assert!(matches!(inspect(f.path()), Err(InspectError::Elf(_))));
}

#[test]
fn offset_table_matches_the_dwarf_of_real_binaries() {
    let table = offsets::table().unwrap();
    for goroot in [GO_1_19, GO_1_23] {
        let version = toolchain_version(goroot);
        let data = read(&built(goroot, Build::Full));
        let members = dwarf_members(&data);
        for (field, offset) in table.named(version) {
            let (ty, name) = field.rsplit_once('.').unwrap();
            assert_eq!(
                members.get(&(ty.to_string(), name.to_string())),
                Some(&u64::from(offset)),
                "Go {version}: {field}"
            );
        }
    }
}

#[test]
fn grpc_client_is_found_and_its_offsets_match_the_dwarf() {
    const TRANSPORT: &str = "google.golang.org/grpc/internal/transport";
    for goroot in [GO_1_19, GO_1_23] {
        let full = inspect(&built_grpc(goroot, Build::Full)).unwrap();
        let client = full.grpc.clone().expect("NewStream found").unwrap();
        assert_eq!((client.major, client.minor), (1, 33));
        let members = dwarf_members(&read(&built_grpc(goroot, Build::Full)));
        let at = |ty: &str, member: &str| members.get(&(format!("{TRANSPORT}.{ty}"), member.to_string())).copied();
        let o = client.offsets;
        assert_eq!(at("Stream", "id"), Some(u64::from(o.stream_id)), "{goroot}");
        assert_eq!(at("Stream", "ct"), Some(u64::from(o.stream_ct)), "{goroot}");
        assert_eq!(at("http2Client", "conn"), Some(u64::from(o.client_conn)), "{goroot}");
        // Stripped: the same function, returns and release from the
        // function table and .rodata.
        let stripped = inspect(&built_grpc(goroot, Build::Stripped)).unwrap();
        assert_eq!(stripped.grpc, full.grpc, "{goroot}");
        let new_stream = |p: &GoProgram| p.functions.iter().find(|f| f.name == GRPC_NEW_STREAM).cloned().unwrap();
        let (f, s) = (new_stream(&full), new_stream(&stripped));
        assert!(!s.returns.is_empty(), "{goroot}");
        assert_eq!((f.entry, f.returns.len()), (s.entry, s.returns.len()), "{goroot}");
    }
    // The net/http app has no grpc-go.
    assert_eq!(inspect(&built(GO_1_23, Build::Stripped)).unwrap().grpc, None);
}

/// `(struct type, member) -> byte offset` for every struct in the DWARF.
fn dwarf_members(data: &[u8]) -> HashMap<(String, String), u64> {
    let elf = object::File::parse(data).unwrap();
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, gimli::Error> {
        Ok(elf.section_by_name(id.name()).and_then(|s| s.data().ok()).map_or(Cow::Borrowed(&[][..]), Cow::Borrowed))
    };
    let sections = gimli::DwarfSections::load(load).unwrap();
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let mut out = HashMap::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let mut entries = unit.entries();
        let mut current: Option<(String, isize)> = None;
        while let Some(entry) = entries.next_dfs().unwrap() {
            let depth = entry.depth();
            let name = || {
                entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| dwarf.attr_string(&unit, v).ok())
                    .map(|s| String::from_utf8_lossy(&s).into_owned())
            };
            if current.as_ref().is_some_and(|(_, d)| depth <= *d) {
                current = None;
            }
            if entry.tag() == gimli::DW_TAG_structure_type {
                current = name().map(|n| (n, depth));
            } else if entry.tag() == gimli::DW_TAG_member
                && let Some((ty, _)) = &current
                && let Some(member) = name()
                && let Some(off) = entry.attr_value(gimli::DW_AT_data_member_location).and_then(|v| v.udata_value())
            {
                out.insert((ty.clone(), member), off);
            }
        }
    }
    out
}

mod damaged {
    //! Property: a damaged function table or build information (bytes
    //! overwritten in a real one, then cut) never panics the reader. (The
    //! agent crate's readers cannot be reached from the cargo-fuzz crate,
    //! which fuzzes obi-protocols only.)

    use proptest::prelude::*;

    use super::*;

    /// The stripped Go 1.23 app's `.gopclntab` bytes, `.text` address and
    /// `.go.buildinfo` bytes.
    fn sections() -> &'static (Vec<u8>, u64, Vec<u8>) {
        static SECTIONS: OnceLock<(Vec<u8>, u64, Vec<u8>)> = OnceLock::new();
        SECTIONS.get_or_init(|| {
            let data = read(&built(GO_1_23, Build::Stripped));
            let elf = object::File::parse(&*data).unwrap();
            let pcln = super::super::elf::section(&elf, ".gopclntab").unwrap().1.to_vec();
            let text = super::super::elf::section(&elf, ".text").unwrap().0;
            let info = super::super::elf::section(&elf, ".go.buildinfo").unwrap().1.to_vec();
            (pcln, text, info)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn damaged_function_tables(writes in prop::collection::vec((0usize..4096, any::<u8>()), 1..16), far in any::<bool>(), cut in any::<u16>()) {
            let (pcln, text, _) = sections();
            let mut data = pcln.clone();
            for (at, byte) in &writes {
                // Near the start: the header and the function table; far: anywhere.
                let at = if far { at * 997 % data.len() } else { *at };
                data[at] = *byte;
            }
            data.truncate(data.len() - usize::from(cut) % 64);
            if let Ok(table) = pclntab::Pclntab::parse(&data, *text) {
                let _ = table.find(&PROBED_FUNCTIONS);
            }
        }

        #[test]
        fn damaged_build_info(writes in prop::collection::vec((0usize..64, any::<u8>()), 1..8), cut in 0usize..96) {
            let (_, _, info) = sections();
            let mut data = info.clone();
            for (at, byte) in &writes {
                if let Some(b) = data.get_mut(*at) {
                    *b = *byte;
                }
            }
            data.truncate(cut.min(data.len()));
            let _ = buildinfo::version(&data, |_, _| None);
        }
    }
}
