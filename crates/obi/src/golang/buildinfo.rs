//! The Go version from `.go.buildinfo`, a section the linker writes into
//! every Go binary (stripped ones too) for `go version <binary>`.
//!
//! Layout: a 32-byte header starting with `\xff Go buildinf:` (14 bytes),
//! then the pointer size (byte 14) and flags (byte 15). With flag bit 1
//! (Go 1.18+) the version follows the header inline as a uvarint length and
//! bytes; without it (up to Go 1.17) bytes 16.. hold the address of a Go
//! string header `(data address, length)` elsewhere in the image.

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;
/// Longer is no version (`go1.23.5 X:...` is well under this).
const MAX_VERSION_LEN: u64 = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BuildInfoError {
    #[error("no Go build information header")]
    NoHeader,
    #[error("big-endian or {0}-byte-pointer build information (only 64-bit little-endian binaries are supported)")]
    Layout(u8),
    #[error("the build information's version string is cut or out of the image")]
    BadString,
}

/// Reads the version string of a `.go.buildinfo` section's bytes.
/// `read_at(address, len)` gives image bytes at a virtual address (for the
/// pre-1.18 pointer form).
pub(crate) fn version<'a>(
    section: &'a [u8],
    read_at: impl Fn(u64, u64) -> Option<&'a [u8]>,
) -> Result<&'a str, BuildInfoError> {
    let header = section.get(..HEADER_LEN).filter(|h| h.starts_with(MAGIC)).ok_or(BuildInfoError::NoHeader)?;
    let (ptr_size, flags) = (header[14], header[15]);
    if flags & FLAG_INLINE != 0 {
        let (len, used) = uvarint(&section[HEADER_LEN..]).ok_or(BuildInfoError::BadString)?;
        if len > MAX_VERSION_LEN {
            return Err(BuildInfoError::BadString);
        }
        let start = HEADER_LEN + used;
        let bytes = section.get(start..start + len as usize).ok_or(BuildInfoError::BadString)?;
        return std::str::from_utf8(bytes).map_err(|_| BuildInfoError::BadString);
    }
    if ptr_size != 8 || flags & FLAG_BIG_ENDIAN != 0 {
        return Err(BuildInfoError::Layout(ptr_size));
    }
    let string_header = u64::from_le_bytes(header[16..24].try_into().map_err(|_| BuildInfoError::NoHeader)?);
    let sh = read_at(string_header, 16).filter(|b| b.len() >= 16).ok_or(BuildInfoError::BadString)?;
    let data = u64::from_le_bytes(sh[..8].try_into().map_err(|_| BuildInfoError::BadString)?);
    let len = u64::from_le_bytes(sh[8..16].try_into().map_err(|_| BuildInfoError::BadString)?);
    if len > MAX_VERSION_LEN {
        return Err(BuildInfoError::BadString);
    }
    let bytes = read_at(data, len).ok_or(BuildInfoError::BadString)?;
    std::str::from_utf8(bytes).map_err(|_| BuildInfoError::BadString)
}

/// An unsigned LEB128 number and the bytes it took.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&[8, flags]);
        h.resize(HEADER_LEN, 0);
        h
    }

    #[test]
    fn inline_version() {
        let mut s = header(FLAG_INLINE);
        s.push(9);
        s.extend_from_slice(b"go1.23.5\0");
        assert_eq!(version(&s, |_, _| None), Ok("go1.23.5\0"));
        let mut s = header(FLAG_INLINE);
        s.push(8);
        s.extend_from_slice(b"go1.23.5");
        s.extend_from_slice(b"\x10path\tcommand-line-arguments\n");
        assert_eq!(version(&s, |_, _| None), Ok("go1.23.5"));
    }

    #[test]
    fn pointer_version() {
        let mut s = header(0);
        s[16..24].copy_from_slice(&0x1000u64.to_le_bytes());
        let mut image = [0u8; 0x40];
        image[..8].copy_from_slice(&0x1020u64.to_le_bytes());
        image[8..16].copy_from_slice(&9u64.to_le_bytes());
        image[0x20..0x29].copy_from_slice(b"go1.15.15");
        let read = |addr: u64, len: u64| image.get((addr - 0x1000) as usize..(addr - 0x1000 + len) as usize);
        assert_eq!(version(&s, read), Ok("go1.15.15"));
        // An address outside the image.
        s[16..24].copy_from_slice(&0x9000u64.to_le_bytes());
        assert_eq!(version(&s, |_, _| None), Err(BuildInfoError::BadString));
    }

    #[test]
    fn bad_sections() {
        assert_eq!(version(b"", |_, _| None), Err(BuildInfoError::NoHeader));
        assert_eq!(version(&[0u8; 64], |_, _| None), Err(BuildInfoError::NoHeader));
        let mut s = header(FLAG_INLINE);
        s.extend_from_slice(&[0xff; 11]);
        assert_eq!(version(&s, |_, _| None), Err(BuildInfoError::BadString));
        let mut s = header(FLAG_INLINE);
        s.push(50);
        s.extend_from_slice(b"go1");
        assert_eq!(version(&s, |_, _| None), Err(BuildInfoError::BadString));
        let mut s = header(0);
        s[14] = 4;
        assert_eq!(version(&s, |_, _| None), Err(BuildInfoError::Layout(4)));
    }
}
