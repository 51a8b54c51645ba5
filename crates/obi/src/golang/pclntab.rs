//! The Go function table (`.gopclntab`), which the linker keeps even in
//! stripped binaries because the runtime needs it for stack traces: every
//! function's name and entry address. Only the part that maps names to
//! addresses is read (no line tables).
//!
//! Layouts (little-endian, `ps` = pointer size), by the magic number in the
//! first 4 bytes:
//! - Go 1.16-1.17 (`0xfffffffa`): header words at `8 + k*ps`: function
//!   count, file count, then offsets of the name table, compilation units,
//!   files, pc data and the function table; function table entries are
//!   `(entry address, record offset)` pointer pairs, a record starts with
//!   `entry address` (ps) then `name offset` (i32).
//! - Go 1.18-1.19 (`0xfffffff0`) and 1.20+ (`0xfffffff1`): the same but
//!   with the text start address after the file count, and entries as
//!   `(entry offset from text start, record offset)` u32 pairs; a record
//!   starts with `entry offset` (u32) then `name offset` (i32).
//!
//! Both end the function table with one extra entry address: the end of the
//! last function, so every function's end is the next one's entry.
//! Older tables (Go 1.2-1.15, `0xfffffffb`) are recognised and refused.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableFormat {
    Go116,
    Go118,
    Go120,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PclntabError {
    #[error("function table too short or cut ({0})")]
    Truncated(&'static str),
    #[error("function table of Go 1.2-1.15, older than this reader supports")]
    TooOld,
    #[error("unknown function table magic {0:#010x}")]
    UnknownMagic(u32),
    #[error("function table for {0}-byte pointers (only 64-bit binaries are supported)")]
    PointerSize(u8),
    #[error("function table with no text start address")]
    NoTextStart,
}

/// A function found in the table: `[entry, end)` in virtual addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FuncRange {
    pub(crate) entry: u64,
    pub(crate) end: u64,
}

/// A parsed table header; lookups walk the function table.
#[derive(Debug)]
pub(crate) struct Pclntab<'a> {
    data: &'a [u8],
    pub(crate) format: TableFormat,
    nfunc: usize,
    text_start: u64,
    funcnames: usize,
    functab: usize,
}

const PTR: usize = 8;

impl<'a> Pclntab<'a> {
    /// Reads the header of `data` (the section's bytes). `text_section` is
    /// the `.text` address, used when the header's text start is 0 (its
    /// place is filled by a dynamic relocation in position-independent
    /// executables).
    pub(crate) fn parse(data: &'a [u8], text_section: u64) -> Result<Pclntab<'a>, PclntabError> {
        let head = data.get(..8).ok_or(PclntabError::Truncated("header"))?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let format = match magic {
            0xffff_fffa => TableFormat::Go116,
            0xffff_fff0 => TableFormat::Go118,
            0xffff_fff1 => TableFormat::Go120,
            0xffff_fffb => return Err(PclntabError::TooOld),
            m => return Err(PclntabError::UnknownMagic(m)),
        };
        if head[4] != 0 || head[5] != 0 {
            return Err(PclntabError::UnknownMagic(magic));
        }
        if head[7] as usize != PTR {
            return Err(PclntabError::PointerSize(head[7]));
        }
        let word = |k: usize| read_u64(data, 8 + k * PTR).ok_or(PclntabError::Truncated("header"));
        let nfunc = usize::try_from(word(0)?).map_err(|_| PclntabError::Truncated("function count"))?;
        let (text_start, funcnames, functab) = match format {
            TableFormat::Go116 => (0, word(2)?, word(6)?),
            TableFormat::Go118 | TableFormat::Go120 => {
                let start = match word(2)? {
                    0 => text_section,
                    s => s,
                };
                if start == 0 {
                    return Err(PclntabError::NoTextStart);
                }
                (start, word(3)?, word(7)?)
            }
        };
        let table =
            Pclntab { data, format, nfunc, text_start, funcnames: to_usize(funcnames)?, functab: to_usize(functab)? };
        // The whole function table must be there, its end entry included.
        let entry_size = table.entry_size();
        let len = nfunc.checked_mul(entry_size).and_then(|n| n.checked_add(entry_size / 2));
        match len.and_then(|n| table.functab.checked_add(n)) {
            Some(end) if end <= data.len() => Ok(table),
            _ => Err(PclntabError::Truncated("function table")),
        }
    }

    /// Number of functions in the table.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nfunc
    }

    /// Finds each of `names`; `found[i]` is set for `names[i]`. Stops
    /// early once all are found. Entries that point outside the table are
    /// skipped (a damaged table yields fewer functions, never wrong ones).
    pub(crate) fn find(&self, names: &[&str]) -> Vec<Option<FuncRange>> {
        let mut found = vec![None; names.len()];
        let mut left = names.len();
        for i in 0..self.nfunc {
            if left == 0 {
                break;
            }
            let Some(name) = self.name(i) else { continue };
            let Some(k) = names.iter().position(|n| n.as_bytes() == name) else { continue };
            if found[k].is_some() {
                continue;
            }
            let (Some(entry), Some(end)) = (self.entry(i), self.entry(i + 1)) else { continue };
            if end <= entry {
                continue;
            }
            found[k] = Some(FuncRange { entry, end });
            left -= 1;
        }
        found
    }

    fn entry_size(&self) -> usize {
        match self.format {
            TableFormat::Go116 => 2 * PTR,
            TableFormat::Go118 | TableFormat::Go120 => 8,
        }
    }

    /// Entry address of function `i` (`i == len()`: the end of the last).
    fn entry(&self, i: usize) -> Option<u64> {
        let at = self.functab + i * self.entry_size();
        match self.format {
            TableFormat::Go116 => read_u64(self.data, at),
            TableFormat::Go118 | TableFormat::Go120 => {
                read_u32(self.data, at).and_then(|off| self.text_start.checked_add(u64::from(off)))
            }
        }
    }

    /// Name of function `i`, through its record.
    fn name(&self, i: usize) -> Option<&'a [u8]> {
        let at = self.functab + i * self.entry_size();
        let (record, name_field) = match self.format {
            TableFormat::Go116 => (to_usize(read_u64(self.data, at + PTR)?).ok()?, PTR),
            TableFormat::Go118 | TableFormat::Go120 => (read_u32(self.data, at + 4)? as usize, 4),
        };
        let name_off = read_u32(self.data, self.functab.checked_add(record)?.checked_add(name_field)?)?;
        let start = self.funcnames.checked_add(name_off as usize)?;
        let rest = self.data.get(start..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }
}

fn to_usize(v: u64) -> Result<usize, PclntabError> {
    usize::try_from(v).map_err(|_| PclntabError::Truncated("offset"))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go 1.16 table with two functions, `main.a` at 0x401000 and
    /// `main.b` at 0x401040, the text ending at 0x401080.
    fn go116_table() -> Vec<u8> {
        let mut t = vec![0xfa, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        let names = b"main.a\0main.b\0";
        let header_end = 8 + 8 * 8;
        let funcnames = header_end;
        let functab = funcnames + names.len() + 2; // 8-aligned
        let words: [u64; 8] = [2, 0, funcnames as u64, 0, 0, 0, functab as u64, 0];
        for w in words {
            t.extend_from_slice(&w.to_le_bytes());
        }
        t.extend_from_slice(names);
        t.resize(functab, 0);
        // Entries (entry, record offset), then the end address.
        let rec_a = 5 * 8;
        let rec_b = rec_a + 16;
        for (entry, rec) in [(0x401000u64, rec_a as u64), (0x401040, rec_b as u64)] {
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&rec.to_le_bytes());
        }
        t.extend_from_slice(&0x401080u64.to_le_bytes());
        // Records: entry, name offset.
        for (entry, name) in [(0x401000u64, 0u32), (0x401040, 7)] {
            t.extend_from_slice(&entry.to_le_bytes());
            t.extend_from_slice(&name.to_le_bytes());
            t.extend_from_slice(&[0; 4]);
        }
        t
    }

    #[test]
    fn reads_a_go116_table() {
        let data = go116_table();
        let t = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(t.format, TableFormat::Go116);
        assert_eq!(t.len(), 2);
        let found = t.find(&["main.b", "main.missing", "main.a"]);
        assert_eq!(found[0], Some(FuncRange { entry: 0x401040, end: 0x401080 }));
        assert_eq!(found[1], None);
        assert_eq!(found[2], Some(FuncRange { entry: 0x401000, end: 0x401040 }));
    }

    #[test]
    fn refuses_old_unknown_and_cut_tables() {
        let mut data = go116_table();
        data[0] = 0xfb;
        assert_eq!(Pclntab::parse(&data, 0).unwrap_err(), PclntabError::TooOld);
        data[0] = 0x12;
        assert!(matches!(Pclntab::parse(&data, 0), Err(PclntabError::UnknownMagic(_))));
        let data = go116_table();
        for cut in [0, 7, 20, data.len() - 60] {
            assert!(Pclntab::parse(&data[..cut], 0).is_err(), "cut at {cut}");
        }
        let mut data = go116_table();
        data[7] = 4;
        assert_eq!(Pclntab::parse(&data, 0).unwrap_err(), PclntabError::PointerSize(4));
    }

    #[test]
    fn damaged_records_yield_nothing_rather_than_wrong_functions() {
        let mut data = go116_table();
        let len = data.len();
        // Point main.b's name offset past the end of everything.
        data[len - 8..len - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let t = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(t.find(&["main.b"]), vec![None]);
        assert!(t.find(&["main.a"])[0].is_some());
    }

    #[test]
    fn go118_needs_a_text_start() {
        let mut data = vec![0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        data.extend_from_slice(&[0; 8 * 8]);
        assert_eq!(Pclntab::parse(&data, 0).unwrap_err(), PclntabError::NoTextStart);
    }
}
