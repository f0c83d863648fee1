//! Stage 1 of loading: inspecting a file without running it ([`inspect_elf`]).
//!
//! The ELF layouts, constants and the string-table lookup are the `object` crate's; the checks
//! and their messages are amm's. `object`'s whole-file parsers (`ElfFile::parse`,
//! `FileHeader::parse`, `SectionTable`, `SymbolTable`) are not used, because they refuse files
//! this check accepts, with messages of their own: an `e_ident` version other than 1, a section
//! header size other than 64, a dynamic string table not of type `SHT_STRTAB`. Reading the file
//! also stays here ([`read_at`]): only the header and the tables the check needs are read, and a
//! table outside the file is refused with a message naming it ("truncated", which the tests and
//! users see), where `object` says only that an offset is invalid.
use super::abi::{not_a_plugin, DESCRIPTOR_SYMBOL, REGISTER_SYMBOL};
use anyhow::{anyhow, bail, Result};
use object::elf::{FileHeader64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader as _, SectionHeader as _, Sym as _};
use object::read::StringTable;
use object::{elf, LittleEndian, ReadRef as _};
use std::mem::size_of;
use std::path::Path;

/// amm runs only on 64-bit little-endian machines.
const LE: LittleEndian = LittleEndian;
type Header = FileHeader64<LittleEndian>;
type SectionHeader = SectionHeader64<LittleEndian>;
type Symbol = Sym64<LittleEndian>;
/// The size of the ELF header (64).
const HEADER_SIZE: u64 = size_of::<Header>() as u64;

/// The `e_machine` of this machine's shared libraries.
fn elf_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(elf::EM_X86_64),
        "aarch64" => Some(elf::EM_AARCH64),
        "riscv64" => Some(elf::EM_RISCV),
        "powerpc64" => Some(elf::EM_PPC64),
        "s390x" => Some(elf::EM_S390),
        _ => None,
    }
}

/// Reads `len` bytes at `off`, refusing reads past the end.
fn read_at(f: &std::fs::File, size: u64, off: u64, len: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let end = off.checked_add(len).ok_or_else(|| anyhow!("corrupt ELF file (offset overflow)"))?;
    if end > size || len > (1 << 30) {
        bail!("corrupt or truncated ELF file (a table at {off}..{end} lies outside the {size}-byte file)");
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

/// Checks, without loading it, that `file` is a 64-bit little-endian ELF shared library for this
/// machine that exports the plugin symbols. Files without section headers pass (the loader's own
/// symbol lookup decides then).
pub fn inspect_elf(file: &Path) -> Result<()> {
    let f = open_regular_file(file)?;
    let size = f.metadata()?.len();
    if size < HEADER_SIZE {
        return Err(not_a_plugin(format!("not a shared library: {size} bytes is too short for an ELF header")));
    }
    let h = read_at(&f, size, 0, HEADER_SIZE)?;
    let header: &Header = h.as_slice().read_at(0).expect("HEADER_SIZE bytes were read");
    check_header(header)?;
    let (shoff, shentsize, shnum) = (header.e_shoff(LE), header.e_shentsize(LE) as u64, header.e_shnum(LE) as u64);
    if shnum == 0 || shoff == 0 {
        return Ok(());
    }
    // A larger entry size is accepted (and stepped over), as ELF allows; `object` wants exactly 64.
    if shentsize < size_of::<SectionHeader>() as u64 {
        bail!("corrupt ELF file (section header size {shentsize})");
    }
    let sh = read_at(&f, size, shoff, shentsize * shnum)?;
    let section = |i: u64| -> &SectionHeader { sh.as_slice().read_at(i * shentsize).expect("i < shnum: inside the table read") };
    let Some(dynsym) = (0..shnum).map(section).find(|s| s.sh_type(LE) == elf::SHT_DYNSYM) else {
        return Err(not_a_plugin("not an amm plugin: it exports no dynamic symbols"));
    };
    let (entsize, link) = (dynsym.sh_entsize(LE), dynsym.sh_link(LE) as u64);
    if entsize < size_of::<Symbol>() as u64 || link >= shnum {
        bail!("corrupt ELF file (bad dynamic symbol table)");
    }
    // The section `sh_link` names holds the names, whatever its type says.
    let strtab = section(link);
    let syms = read_at(&f, size, dynsym.sh_offset(LE), dynsym.sh_size(LE))?;
    let mut strs = read_at(&f, size, strtab.sh_offset(LE), strtab.sh_size(LE))?;
    // A NUL after the table: a last name the table leaves unterminated runs to its end (`object`
    // would refuse it), and a name at the table's very end is empty.
    strs.push(0);
    let names = StringTable::new(strs.as_slice(), 0, strs.len() as u64);
    let mut found = [false; 2];
    for k in 0..(syms.len() as u64 / entsize) {
        let sym: &Symbol = syms.as_slice().read_at(k * entsize).expect("k < count: inside the table read");
        if sym.is_undefined(LE) {
            continue;
        }
        // A name offset outside the table is no name.
        let name = sym.name(LE, names).unwrap_or(&[]);
        for (j, want) in [DESCRIPTOR_SYMBOL, REGISTER_SYMBOL].iter().enumerate() {
            if name == want.as_bytes() {
                found[j] = true;
            }
        }
    }
    match found {
        [true, true] => Ok(()),
        [false, _] => Err(not_a_plugin(format!(
            "a shared library, but not an amm plugin: it does not export `{DESCRIPTOR_SYMBOL}` (plugins declare it with \
             `amm_core::declare_plugin!`)"
        ))),
        [true, false] => Err(not_a_plugin(format!("not an amm plugin: it exports `{DESCRIPTOR_SYMBOL}` but not `{REGISTER_SYMBOL}`"))),
    }
}

/// Opens `file` if it is a regular file. Checked before opening: opening a FIFO blocks until a
/// writer comes, and a device may never end.
fn open_regular_file(file: &Path) -> Result<std::fs::File> {
    let kind = std::fs::metadata(file)?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(not_a_plugin(format!("{what}, not a shared library")));
    }
    Ok(std::fs::File::open(file)?)
}

/// The ELF header describes a 64-bit little-endian shared library for this machine. The class
/// and byte order are checked here, not by `FileHeader::parse`, which also insists on an
/// `e_ident` version of 1 and does not name what it refused.
fn check_header(header: &Header) -> Result<()> {
    let ident = &header.e_ident;
    if ident.magic != elf::ELFMAG {
        return Err(not_a_plugin(format!("not a shared library (no ELF header: the file starts with {:02x?})", ident.magic)));
    }
    if ident.class != elf::ELFCLASS64 || ident.data != elf::ELFDATA2LSB {
        bail!("not a 64-bit little-endian ELF file, so not built for this amm");
    }
    let e_type = header.e_type(LE);
    if e_type != elf::ET_DYN {
        return Err(not_a_plugin(format!("an ELF file of type {e_type}, not a shared library (an executable or object file?)")));
    }
    let machine = header.e_machine(LE);
    if let Some(m) = elf_machine() {
        if machine != m {
            bail!("a shared library for another architecture (ELF machine {machine}, this is {})", std::env::consts::ARCH);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::NotAPlugin;

    /// `inspect_elf` of `bytes` written to a file: `Ok`, or the message and whether it was a
    /// [`NotAPlugin`].
    fn inspect(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), (String, bool)> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        inspect_elf(&p).map_err(|e| (format!("{e:#}"), e.chain().any(|c| c.is::<NotAPlugin>())))
    }

    #[test]
    fn each_check_refuses_with_its_message() {
        // A real shared library of this machine that is not a plugin: libstd, which every amm
        // process maps (everything links std dynamically), or else libc.
        let Some(real) = crate::plugin::loaded_library("libstd-").or_else(|| crate::plugin::loaded_library("libc.so")) else { return };
        let lib = std::fs::read(real).unwrap();
        let dir = std::env::temp_dir().join(format!("amm-plugin-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_plugin = inspect(&dir, "libstd.so", &lib).unwrap_err();
        assert!(not_plugin.0.contains("does not export `amm_plugin_descriptor`") && not_plugin.1, "{not_plugin:?}");
        let with = |at: usize, bytes: &[u8]| {
            let mut b = lib.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        let refused = |name: &str, bytes: &[u8], want: &str, is_not_plugin: bool| {
            let (msg, np) = inspect(&dir, name, bytes).unwrap_err();
            assert!(msg.contains(want) && np == is_not_plugin, "{name}: {msg} (not a plugin: {np})");
        };
        refused("libclass.so", &with(4, &[1]), "not a 64-bit little-endian ELF file", false);
        refused("libbig.so", &with(5, &[2]), "not a 64-bit little-endian ELF file", false);
        refused("libexec.so", &with(16, &2u16.to_le_bytes()), "an ELF file of type 2, not a shared library", true);
        refused("libarm.so", &with(18, &9999u16.to_le_bytes()), "another architecture (ELF machine 9999", false);
        refused("libshent.so", &with(58, &32u16.to_le_bytes()), "corrupt ELF file (section header size 32)", false);
        refused("libcut.so", &lib[..lib.len() - 1], "corrupt or truncated ELF file (a table at", false);
        refused("libfar.so", &with(40, &u64::MAX.to_le_bytes()), "corrupt ELF file (offset overflow)", false);
        refused("libzero.so", &[0; 64], "no ELF header: the file starts with [00, 00, 00, 00]", true);
        refused("libtiny.so", &[0x7f, b'E', b'L', b'F'], "4 bytes is too short", true);
        // No section headers: the loader decides.
        assert!(inspect(&dir, "libnosh.so", &with(60, &0u16.to_le_bytes())).is_ok());
        let err = inspect_elf(&dir).unwrap_err();
        assert!(format!("{err}").contains("a directory, not a shared library") && err.is::<NotAPlugin>(), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
