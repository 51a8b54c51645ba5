//! What the Go reader needs from an executable's ELF: named sections,
//! function symbols from `.symtab`, and virtual address to file offset
//! (uprobes are placed by file offset).

use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

use super::pclntab::FuncRange;

/// Bytes at a virtual address, from the section holding them.
pub(crate) fn read_at<'a>(file: &object::File<'a>, address: u64, len: u64) -> Option<&'a [u8]> {
    file.sections().find_map(|s| s.data_range(address, len).ok().flatten())
}

/// The data of the section called `name`, if there is one with data.
pub(crate) fn section<'a>(file: &object::File<'a>, name: &str) -> Option<(u64, &'a [u8])> {
    let s = file.section_by_name(name)?;
    Some((s.address(), s.data().ok()?))
}

/// Looks `names` up in `.symtab`; `None` when the binary has no symbol
/// table (stripped). Functions without a size are skipped.
pub(crate) fn symtab_find(file: &object::File<'_>, names: &[&str]) -> Option<Vec<Option<FuncRange>>> {
    let mut symbols = file.symbols().peekable();
    symbols.peek()?;
    let mut found = vec![None; names.len()];
    for sym in symbols {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let Ok(name) = sym.name_bytes() else { continue };
        if let Some(k) = names.iter().position(|n| n.as_bytes() == name) {
            found[k].get_or_insert(FuncRange { entry: sym.address(), end: sym.address() + sym.size() });
        }
    }
    Some(found)
}

/// The file offset of a virtual address inside a loaded segment.
pub(crate) fn file_offset(file: &object::File<'_>, address: u64) -> Option<u64> {
    file.segments().find_map(|seg| {
        let (offset, size) = seg.file_range();
        let delta = address.checked_sub(seg.address())?;
        (delta < size).then_some(offset + delta)
    })
}
