//! Language detection with OBI's rules (`pkg/internal/exec/proclang*.go`), in
//! OBI's order:
//!
//! 1. mapped modules (`/proc/<pid>/maps`, the executable included): `*/node`
//!    (`nodejs`), `ruby[\d.]*`, `python[\d.]*` basenames; `libcoreclr.so`
//!    (dotnet), `libjvm.so` (java), `libpython3*.so`, `libruby-*.so`,
//!    `libnode.so`;
//! 2. the executable's ELF: a `.gopclntab` or `.go.buildinfo` section (go),
//!    then function symbols containing `rust_panic` (rust) or starting with
//!    `JVM_` / `graal_` (java);
//! 3. the executable path containing `php`;
//! 4. the environment containing `ASPNET` or `DOTNET` (dotnet);
//! 5. otherwise `generic`.
//!
//! The ELF step is cached per binary (device, inode): only the section headers
//! are read first, symbol tables only when no Go section is found.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{LazyLock, Mutex};

use object::elf;
use object::read::ReadCache;
use object::read::elf::{FileHeader, SectionHeader, Sym};

use super::procscan::{ProcessInfo, read_proc_file};
use crate::service::Language;

/// Bounds the ELF cache (distinct executables seen); cleared when exceeded.
const ELF_CACHE_MAX: usize = 4096;

static ELF_CACHE: LazyLock<Mutex<HashMap<(u64, u64), Language>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Detects the language a process runs, reading `/proc/<pid>/{maps,exe,environ}`.
pub(crate) fn detect_language(p: &ProcessInfo) -> Language {
    // 1. Mapped modules. When maps can't be read, the executable path stands in.
    match read_proc_file(&format!("/proc/{}/maps", p.pid), 64 * 1024) {
        Ok(maps) => {
            if let Some(lang) = language_from_maps(&maps) {
                return lang;
            }
        }
        Err(_) => {
            if let Some(lang) = p.exe_path.to_str().and_then(language_from_module) {
                return lang;
            }
        }
    }
    // 2. ELF sections and symbols, cached per binary.
    let lang = elf_language_cached(p);
    if lang != Language::Generic {
        return lang;
    }
    // 3. Path.
    if p.exe_path.as_os_str().as_encoded_bytes().windows(3).any(|w| w == b"php") {
        return Language::Php;
    }
    // 4. Environment.
    match read_proc_file(&format!("/proc/{}/environ", p.pid), 16 * 1024) {
        Ok(env) if contains(&env, b"ASPNET") || contains(&env, b"DOTNET") => Language::DotNet,
        _ => Language::Generic,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Applies the module rules to every distinct pathname of a maps file, in order.
fn language_from_maps(maps: &[u8]) -> Option<Language> {
    let mut last: &[u8] = b"";
    for line in maps.split(|&b| b == b'\n') {
        let Some(path) = maps_pathname(line) else { continue };
        if path == last {
            continue;
        }
        last = path;
        let Ok(path) = std::str::from_utf8(path) else { continue };
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if let Some(lang) = language_from_module(path) {
            return Some(lang);
        }
    }
    None
}

/// The pathname column of a maps line (the 6th field, which may contain spaces).
fn maps_pathname(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|&b| b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|&b| b == b' ')?;
        rest = &rest[end..];
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    let path = &rest[start..];
    // Only files: skip `[heap]`, `[vdso]`, anonymous `//anon` etc.
    path.starts_with(b"/").then_some(path)
}

/// OBI's module rules on one mapped path (or bare name).
pub(crate) fn language_from_module(path: &str) -> Option<Language> {
    let base = path.rsplit('/').next().unwrap_or(path);
    if base == "node" || base == "nodejs" {
        return Some(Language::NodeJs);
    }
    if name_then_version(base, "ruby") {
        return Some(Language::Ruby);
    }
    if name_then_version(base, "python") {
        return Some(Language::Python);
    }
    if path.contains("libcoreclr.so") {
        return Some(Language::DotNet);
    }
    if path.contains("libjvm.so") {
        return Some(Language::Java);
    }
    if lib_then_version_so(path, "libpython3") {
        return Some(Language::Python);
    }
    if lib_then_version_so(path, "libruby-") {
        return Some(Language::Ruby);
    }
    if path.contains("libnode.so") {
        return Some(Language::NodeJs);
    }
    None
}

/// `^name[\d.]*$` on a basename.
fn name_then_version(base: &str, name: &str) -> bool {
    base.strip_prefix(name).is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// Unanchored `prefix[\d.]*\.so` (the version may be empty).
fn lib_then_version_so(path: &str, prefix: &str) -> bool {
    path.match_indices(prefix).any(|(i, _)| {
        let rest = &path[i + prefix.len()..];
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        // `[\d.]*` is greedy but may give back the dot of `.so`.
        (0..=digits).any(|n| rest[n..].starts_with(".so"))
    })
}

fn elf_language_cached(p: &ProcessInfo) -> Language {
    let key = (p.exe_dev, p.exe_ino);
    let cacheable = p.exe_ino != 0;
    if cacheable && let Some(lang) = ELF_CACHE.lock().ok().and_then(|c| c.get(&key).copied()) {
        return lang;
    }
    let Ok(file) = File::open(format!("/proc/{}/exe", p.pid)) else { return Language::Generic };
    let lang = elf_language(file);
    if cacheable && let Ok(mut cache) = ELF_CACHE.lock() {
        if cache.len() >= ELF_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, lang);
    }
    lang
}

/// Language from an ELF file's sections and symbols (step 2 only).
pub(crate) fn elf_language(file: File) -> Language {
    let cache = ReadCache::new(file);
    let data = &cache;
    match object::FileKind::parse(data) {
        Ok(object::FileKind::Elf64) => elf_language_of::<elf::FileHeader64<object::Endianness>>(data),
        Ok(object::FileKind::Elf32) => elf_language_of::<elf::FileHeader32<object::Endianness>>(data),
        _ => None,
    }
    .unwrap_or(Language::Generic)
}

fn elf_language_of<Elf: FileHeader<Endian = object::Endianness>>(data: &ReadCache<File>) -> Option<Language> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.section_headers(endian, data).ok()?;
    if sections.is_empty() {
        return None;
    }
    // Section names: one read of the section-header string table.
    let shstrndx = header.shstrndx(endian, data).ok()? as usize;
    let shstrtab = sections.get(shstrndx)?.data(endian, data).ok()?;
    for s in sections {
        let name = c_str_at(shstrtab, s.sh_name(endian) as usize);
        if name == b".gopclntab" || name == b".go.buildinfo" {
            return Some(Language::Go);
        }
    }
    // Symbols: `.symtab` then `.dynsym`, as OBI walks the section list.
    for s in sections {
        let ty = s.sh_type(endian);
        if ty != elf::SHT_SYMTAB && ty != elf::SHT_DYNSYM {
            continue;
        }
        let Ok(symbols) = s.data_as_array::<Elf::Sym, _>(endian, data) else { continue };
        let Some(strtab) = sections.get(s.sh_link(endian) as usize) else { continue };
        let Ok(strings) = strtab.data(endian, data) else { continue };
        for sym in symbols {
            if sym.st_type() != elf::STT_FUNC || sym.st_size(endian).into() == 0 || sym.st_value(endian).into() == 0 {
                continue;
            }
            let name = c_str_at(strings, sym.st_name(endian) as usize);
            if let Some(lang) = language_from_symbol(name) {
                return Some(lang);
            }
        }
    }
    None
}

fn c_str_at(table: &[u8], offset: usize) -> &[u8] {
    let Some(rest) = table.get(offset..) else { return b"" };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

fn language_from_symbol(name: &[u8]) -> Option<Language> {
    if contains(name, b"rust_panic") {
        Some(Language::Rust)
    } else if name.starts_with(b"JVM_") || name.starts_with(b"graal_") {
        Some(Language::Java)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::procscan::read_process;

    #[test]
    fn module_rules() {
        assert_eq!(language_from_module("/usr/bin/node"), Some(Language::NodeJs));
        assert_eq!(language_from_module("/usr/bin/nodejs"), Some(Language::NodeJs));
        assert_eq!(language_from_module("/usr/bin/python3.11"), Some(Language::Python));
        assert_eq!(language_from_module("/usr/local/bin/python"), Some(Language::Python));
        assert_eq!(language_from_module("/usr/bin/python3-config"), None);
        assert_eq!(language_from_module("/usr/bin/ruby3.2"), Some(Language::Ruby));
        assert_eq!(language_from_module("/usr/lib/jvm/java-17/lib/server/libjvm.so"), Some(Language::Java));
        assert_eq!(
            language_from_module("/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.0/libcoreclr.so"),
            Some(Language::DotNet)
        );
        assert_eq!(language_from_module("/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"), Some(Language::Python));
        assert_eq!(language_from_module("/usr/lib/libpython3.so"), Some(Language::Python));
        assert_eq!(language_from_module("/usr/lib/libruby-3.2.so.3.2"), Some(Language::Ruby));
        assert_eq!(language_from_module("/usr/lib/libnode.so.109"), Some(Language::NodeJs));
        assert_eq!(language_from_module("/usr/lib/x86_64-linux-gnu/libc.so.6"), None);
        assert_eq!(language_from_module("/usr/bin/nodemon"), None);
    }

    #[test]
    fn maps_parsing() {
        let maps = b"55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234   /usr/bin/python3.12\n\
7ffd0000-7ffd1000 rw-p 00000000 00:00 0                          [stack]\n";
        assert_eq!(language_from_maps(maps), Some(Language::Python));
        let maps = b"55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234 /opt/my app/bin server\n";
        assert_eq!(maps_pathname(&maps[..maps.len() - 1]), Some(&b"/opt/my app/bin server"[..]));
        assert_eq!(maps_pathname(b"7ffd0000-7ffd1000 rw-p 00000000 00:00 0 "), None);
        let maps = b"1000-2000 r-xp 00000000 08:01 99 /usr/lib/jvm/lib/server/libjvm.so (deleted)\n";
        assert_eq!(language_from_maps(maps), Some(Language::Java));
    }

    #[test]
    fn symbol_rules() {
        assert_eq!(language_from_symbol(b"rust_panic"), Some(Language::Rust));
        assert_eq!(language_from_symbol(b"_ZN3std9panicking10rust_panic17h0E"), Some(Language::Rust));
        assert_eq!(language_from_symbol(b"JVM_GetVersion"), Some(Language::Java));
        assert_eq!(language_from_symbol(b"graal_create_isolate"), Some(Language::Java));
        assert_eq!(language_from_symbol(b"main"), None);
    }

    #[test]
    fn this_test_binary_is_rust() {
        let p = read_process(std::process::id(), false).unwrap();
        assert_eq!(detect_language(&p), Language::Rust);
        // Served from the cache the second time.
        assert_eq!(elf_language_cached(&p), Language::Rust);
    }

    #[test]
    fn plain_c_binary_is_generic() {
        let f = File::open("/bin/sh").unwrap();
        assert_eq!(elf_language(f), Language::Generic);
    }
}
