//! The return instructions of a Go function. A uretprobe replaces the
//! return address on the stack, and Go copies goroutine stacks when they
//! grow, which breaks that (it crashes programs); so a function's returns
//! are probed with plain uprobes on each of its `ret` instructions, found
//! by decoding the function from its entry to its end.

use iced_x86::{Decoder, DecoderOptions, Mnemonic};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ReturnsError {
    #[error("undecodable instruction at {0:#x}: the function cannot be read, its returns are not probed")]
    Undecodable(u64),
    #[error("no return instruction found")]
    NoReturn,
}

/// Addresses of the `ret` instructions in `code`, the bytes of a 64-bit
/// x86 function starting at `entry` (up to the next function: Go pads with
/// `int3`, which decodes).
pub(crate) fn return_addresses(code: &[u8], entry: u64) -> Result<Vec<u64>, ReturnsError> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        if ins.is_invalid() {
            return Err(ReturnsError::Undecodable(ins.ip()));
        }
        if ins.mnemonic() == Mnemonic::Ret {
            out.push(ins.ip());
        }
    }
    if out.is_empty() {
        return Err(ReturnsError::NoReturn);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_ret_and_only_rets() {
        // push rbp; mov rbp,rsp; test eax,eax; je +2; pop rbp; ret;
        // pop rbp; ret; int3 int3 (padding). The 0xc3 inside `mov eax,0xc3`
        // is an immediate, not a return.
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x85, 0xc0, 0x74, 0x02, 0x5d, 0xc3, 0x5d, 0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc3, 0xcc,
            0xcc,
        ];
        assert_eq!(return_addresses(&code, 0x1000), Ok(vec![0x1009, 0x1010]));
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        assert_eq!(return_addresses(&[0x55, 0x90], 0x1000), Err(ReturnsError::NoReturn));
        // 0x06 (push es) does not exist in 64-bit mode.
        assert_eq!(return_addresses(&[0x06, 0xc3], 0x2000), Err(ReturnsError::Undecodable(0x2000)));
        // Cut in the middle of an instruction.
        assert!(matches!(return_addresses(&[0xc3, 0x48, 0x89], 0x3000), Err(ReturnsError::Undecodable(0x3001))));
    }
}
