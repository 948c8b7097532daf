//! The one ELF fact podrun needs about the pause binary: its program
//! interpreter (`PT_INTERP`, the dynamic loader the kernel maps before
//! the program; none for a static or static-pie binary). The System V
//! gABI "Program Header" chapter defines the layout read here.
//!
//! Our own reader, not the `object`/`goblin` crates: it reads one program
//! header type out of a few fixed offsets, which does not justify a new
//! dependency tree; malformed input is an error, never a panic (every
//! read is bounds-checked).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    #[error("unsupported ELF header: {0}")]
    Unsupported(&'static str),
    #[error("truncated or malformed ELF file: {0}")]
    Malformed(&'static str),
}

/// `e_ident[EI_CLASS]` values.
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` values.
const ELFDATA2LSB: u8 = 1;
const ELFDATA2MSB: u8 = 2;
/// `e_type`: an executable or a position-independent one (ET_DYN).
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_INTERP: u32 = 3;

/// Bounds-checked, endian-aware reads from the file.
struct Reader<'a> {
    b: &'a [u8],
    big: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, off: usize) -> Result<[u8; N], ElfError> {
        let end = off.checked_add(N).ok_or(ElfError::Malformed("offset"))?;
        let s = self
            .b
            .get(off..end)
            .ok_or(ElfError::Malformed("header past end of file"))?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        if self.big {
            a.reverse();
        }
        Ok(a)
    }
    fn u16(&self, off: usize) -> Result<u16, ElfError> {
        Ok(u16::from_le_bytes(self.bytes(off)?))
    }
    fn u32(&self, off: usize) -> Result<u32, ElfError> {
        Ok(u32::from_le_bytes(self.bytes(off)?))
    }
    /// A file offset or size: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, off: usize, wide: bool) -> Result<usize, ElfError> {
        let v = if wide {
            u64::from_le_bytes(self.bytes(off)?)
        } else {
            u64::from(self.u32(off)?)
        };
        usize::try_from(v).map_err(|_| ElfError::Malformed("offset too large"))
    }
}

/// The program interpreter named by the ELF executable `b`, or `None`
/// when it has none (static, static-pie).
pub fn interpreter(b: &[u8]) -> Result<Option<String>, ElfError> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    let wide = match b.get(4) {
        Some(&ELFCLASS64) => true,
        Some(&ELFCLASS32) => false,
        _ => return Err(ElfError::Unsupported("class is neither ELF32 nor ELF64")),
    };
    let big = match b.get(5) {
        Some(&ELFDATA2LSB) => false,
        Some(&ELFDATA2MSB) => true,
        _ => return Err(ElfError::Unsupported("unknown byte order")),
    };
    let r = Reader { b, big };
    if !matches!(r.u16(16)?, ET_EXEC | ET_DYN) {
        return Err(ElfError::Unsupported(
            "not an executable (e_type is not EXEC or DYN)",
        ));
    }
    // e_phoff, e_phentsize, e_phnum (gABI "ELF Header").
    let (phoff, phentsize, phnum) = if wide {
        (r.word(0x20, true)?, r.u16(0x36)?, r.u16(0x38)?)
    } else {
        (r.word(0x1c, false)?, r.u16(0x2a)?, r.u16(0x2c)?)
    };
    for i in 0..usize::from(phnum) {
        let ph = usize::from(phentsize)
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Malformed("program header offset"))?;
        if r.u32(ph)? != PT_INTERP {
            continue;
        }
        // p_offset and p_filesz.
        let (off, size) = if wide {
            (r.word(ph + 8, true)?, r.word(ph + 32, true)?)
        } else {
            (r.word(ph + 4, false)?, r.word(ph + 16, false)?)
        };
        let raw = off
            .checked_add(size)
            .and_then(|end| b.get(off..end))
            .ok_or(ElfError::Malformed("PT_INTERP past end of file"))?;
        // NUL-terminated path.
        let path = raw.split(|&c| c == 0).next().unwrap_or_default();
        let path =
            std::str::from_utf8(path).map_err(|_| ElfError::Malformed("PT_INTERP is not UTF-8"))?;
        if path.is_empty() {
            return Err(ElfError::Malformed("empty PT_INTERP"));
        }
        return Ok(Some(path.to_string()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian executable image: header, `phnum`
    /// program headers at 64, the interpreter string (if any) after them.
    fn elf64(interp: Option<&str>, extra_headers: u16) -> Vec<u8> {
        let phnum = extra_headers + u16::from(interp.is_some());
        let mut b = vec![0u8; 64 + 56 * usize::from(phnum)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        for i in 0..usize::from(extra_headers) {
            // PT_LOAD.
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&1u32.to_le_bytes());
        }
        if let Some(p) = interp {
            let ph = 64 + 56 * usize::from(extra_headers);
            let off = b.len() as u64;
            let size = p.len() as u64 + 1;
            b[ph..ph + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
            b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            b[ph + 32..ph + 40].copy_from_slice(&size.to_le_bytes());
            b.extend_from_slice(p.as_bytes());
            b.push(0);
        }
        b
    }

    #[test]
    fn finds_the_interpreter_after_other_headers() {
        let b = elf64(Some("/lib/ld-x.so.1"), 3);
        assert_eq!(interpreter(&b), Ok(Some("/lib/ld-x.so.1".into())));
        assert_eq!(interpreter(&elf64(None, 4)), Ok(None), "static");
    }

    #[test]
    fn big_endian_and_elf32_headers() {
        // ELF32 big-endian: e_phoff at 0x1c, e_phentsize 0x2a, e_phnum 0x2c;
        // a 32-byte program header with p_offset at 4, p_filesz at 16.
        let mut b = vec![0u8; 52 + 32];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS32;
        b[5] = ELFDATA2MSB;
        b[16..18].copy_from_slice(&ET_EXEC.to_be_bytes());
        b[0x1c..0x20].copy_from_slice(&52u32.to_be_bytes());
        b[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        b[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        b[52..56].copy_from_slice(&PT_INTERP.to_be_bytes());
        b[56..60].copy_from_slice(&84u32.to_be_bytes());
        b[68..72].copy_from_slice(&8u32.to_be_bytes());
        b.extend_from_slice(b"/lib/ld\0");
        assert_eq!(interpreter(&b), Ok(Some("/lib/ld".into())));
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        assert_eq!(interpreter(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(interpreter(b""), Err(ElfError::NotElf));
        let good = elf64(Some("/lib/ld.so"), 1);
        // Every truncation is an error, never a panic.
        for n in 4..good.len() {
            let r = interpreter(&good[..n]);
            assert!(r.is_err(), "cut at {n}: {r:?}");
        }
        let mut obj = good.clone();
        obj[16] = 1; // ET_REL: an object file.
        assert!(matches!(interpreter(&obj), Err(ElfError::Unsupported(_))));
        let mut class = good.clone();
        class[4] = 9;
        assert!(matches!(interpreter(&class), Err(ElfError::Unsupported(_))));
        let mut huge = good;
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(interpreter(&huge), Err(ElfError::Malformed(_))));
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        // Test binaries are dynamically linked (the -gnu default).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = interpreter(&me).unwrap().expect("PT_INTERP");
        assert!(interp.starts_with('/') && interp.contains("ld"), "{interp}");
    }
}
