//! The kernel's system calls: numbers and names from `sys_call_table`, prototypes from
//! `CONFIG_FTRACE_SYSCALLS`'s `struct syscall_metadata` records.
//!
//! `sys_call_table[n]` holds the address of the architecture's wrapper for system call
//! `n` (`__riscv_sys_openat`, `__x64_sys_openat`); unused numbers hold
//! `sys_ni_syscall`'s. Each `SYSCALL_DEFINEn` also emits a record
//! `__syscall_meta__NAME` { name, syscall_nr, nb_args, types, args, ... } whose `types`
//! and `args` point to arrays of C strings: the argument types as written in the source
//! and their names. All of it is read from the file image, because the pointer array
//! that lists the records is in init memory, which the kernel frees after boot. Field
//! offsets come from the kernel's own BTF (`struct syscall_metadata`).

use crate::btf::Btf;
use crate::kallsyms::SymbolTable;
use crate::kernel_image::KernelImage;
use crate::profile::{ArgumentKind, ProfileError, SyscallArgument, SyscallInfo};

/// More entries than any architecture's table has (x86_64 6.12: 463).
const MAX_ENTRIES: u64 = 4096;
/// `SYSCALL_DEFINE` takes at most six arguments.
const MAX_ARGUMENTS: u32 = 6;

/// Names of `const char *` arguments that are buffers, not NUL-terminated strings.
const CONST_BUFFERS: &[&str] = &[
    "buf",
    "ubuf",
    "optval",
    "u_msg_ptr",
    "msg_ptr",
    "uargs",
    "vec",
    "_payload",
    "_value",
    "value",
    "shmaddr",
    "list",
    "data",
    "umsg",
    "msg",
];

/// Names of (non-const) `char *` arguments that are strings the kernel reads
/// (`mount`'s, `umount`'s) unless a `len` argument says they are sized buffers
/// (`sethostname`).
const MUTABLE_STRINGS: &[&str] = &[
    "dev_name", "dir_name", "type", "filename", "pathname", "path", "name",
];

/// The offsets of `struct syscall_metadata`'s fields.
struct MetadataLayout {
    name: u64,
    nb_args: u64,
    types: u64,
    args: u64,
}

impl MetadataLayout {
    /// From BTF, else the layout every 64-bit kernel since 2.6.33 has.
    fn of(btf: &Btf) -> MetadataLayout {
        let from_btf = || {
            let id = btf.find_composite("syscall_metadata")?;
            Some(MetadataLayout {
                name: btf.offset_of(id, "name")?,
                nb_args: btf.offset_of(id, "nb_args")?,
                types: btf.offset_of(id, "types")?,
                args: btf.offset_of(id, "args")?,
            })
        };
        from_btf().unwrap_or(MetadataLayout {
            name: 0,
            nb_args: 12,
            types: 16,
            args: 24,
        })
    }
}

/// The system calls (by number) and the numbers that have prototypes.
pub(crate) fn read(
    image: &KernelImage<'_>,
    symbols: &SymbolTable,
    btf: &Btf,
) -> Result<(Vec<SyscallInfo>, Vec<u64>), ProfileError> {
    let Some(table) = symbols.get("sys_call_table").map(|s| s.address) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let prefix = image.arch().syscall_symbol_prefix();
    let layout = MetadataLayout::of(btf);
    let ni = symbols.get("sys_ni_syscall").map(|s| s.address);
    let ni_prefixed = symbols
        .get(&format!("{prefix}ni_syscall"))
        .map(|s| s.address);
    let end = symbols
        .next_address_after(table)
        .unwrap_or(table + 8 * MAX_ENTRIES);
    let entries = ((end - table) / 8).min(MAX_ENTRIES);

    let mut syscalls = Vec::new();
    let mut prototyped = Vec::new();
    for number in 0..entries {
        let Some(target) = image.read_u64(table + 8 * number) else {
            break;
        };
        if Some(target) == ni || Some(target) == ni_prefixed {
            continue;
        }
        let here = symbols.at(target);
        if !here.iter().any(|s| matches!(s.kind, 'T' | 't' | 'W' | 'w')) {
            // Not a function: past the table's end (x86's table is followed by zeros,
            // and address 0 is the absolute per-CPU symbol `fixed_percpu_data`).
            break;
        }
        let names = here
            .iter()
            .filter_map(|s| s.name.strip_prefix(prefix))
            .collect::<Vec<_>>();
        let name = names
            .iter()
            .copied()
            .find(|n| symbols.get(&format!("__syscall_meta__{n}")).is_some())
            .or_else(|| names.first().copied())
            .map(str::to_string)
            .or_else(|| {
                here.iter()
                    .find_map(|s| s.name.strip_prefix("sys_").map(str::to_string))
            })
            .unwrap_or_else(|| here[0].name.clone());
        if name == "ni_syscall" {
            continue;
        }
        let arguments = symbols
            .get(&format!("__syscall_meta__{name}"))
            .and_then(|meta| read_prototype(image, btf, &layout, meta.address));
        if arguments.is_some() {
            prototyped.push(number);
        }
        syscalls.push(SyscallInfo {
            number,
            name,
            arguments: arguments.unwrap_or_default(),
        });
    }
    Ok((syscalls, prototyped))
}

/// The arguments a `struct syscall_metadata` at `meta` lists.
fn read_prototype(
    image: &KernelImage<'_>,
    btf: &Btf,
    layout: &MetadataLayout,
    meta: u64,
) -> Option<Vec<SyscallArgument>> {
    // The record's own name ("sys_openat") confirms it is one.
    let name = image.read_cstr(image.read_u64(meta + layout.name)?, 128)?;
    if !name.starts_with("sys_") {
        return None;
    }
    let count = image.read_u32(meta + layout.nb_args)?;
    if count > MAX_ARGUMENTS {
        return None;
    }
    let mut arguments = Vec::with_capacity(count as usize);
    if count == 0 {
        return Some(arguments);
    }
    let types = image.read_u64(meta + layout.types)?;
    let args = image.read_u64(meta + layout.args)?;
    for i in 0..u64::from(count) {
        let c_type = image.read_cstr(image.read_u64(types + 8 * i)?, 256)?;
        let name = image.read_cstr(image.read_u64(args + 8 * i)?, 256)?;
        let kind = classify(&c_type, btf);
        arguments.push(SyscallArgument { name, c_type, kind });
    }
    refine_strings(&mut arguments);
    Some(arguments)
}

/// Marks the `char *` arguments that are NUL-terminated strings (the C type alone
/// cannot say: `write`'s buffer is a `const char *` too), by their names.
fn refine_strings(arguments: &mut [SyscallArgument]) {
    let sized = arguments.iter().any(|a| a.name == "len");
    for argument in arguments.iter_mut() {
        if argument.kind != ArgumentKind::Pointer || argument.c_type.matches('*').count() != 1 {
            continue;
        }
        let words: Vec<&str> = argument
            .c_type
            .split(|c: char| c == '*' || c.is_whitespace())
            .filter(|w| !w.is_empty() && !matches!(*w, "__user" | "volatile"))
            .collect();
        let name = argument.name.as_str();
        let string = match words.as_slice() {
            ["const", "char"] | ["char", "const"] => !CONST_BUFFERS.contains(&name),
            ["char"] => MUTABLE_STRINGS.contains(&name) && !sized,
            _ => false,
        };
        if string {
            argument.kind = ArgumentKind::String;
        }
    }
}

/// How an argument of C type `c_type` is decoded: pointers (strings are told apart by
/// [`refine_strings`]), integers by their width and signedness through BTF's typedefs.
pub(crate) fn classify(c_type: &str, btf: &Btf) -> ArgumentKind {
    if c_type.contains('*') || c_type.contains('[') {
        return ArgumentKind::Pointer;
    }
    let words: Vec<&str> = c_type
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile" | "__user"))
        .collect();
    let builtin = [
        "unsigned", "signed", "int", "long", "short", "char", "_Bool",
    ];
    if !words.is_empty() && words.iter().all(|w| builtin.contains(w)) {
        let unsigned = words.contains(&"unsigned") || words.contains(&"_Bool");
        let bits = if words.contains(&"char") || words.contains(&"_Bool") {
            8
        } else if words.contains(&"short") {
            16
        } else if words.contains(&"long") {
            64
        } else {
            32
        };
        return if unsigned {
            ArgumentKind::Unsigned(bits)
        } else {
            ArgumentKind::Signed(bits)
        };
    }
    let type_name = words.join(" ");
    if let Some(id) = btf.find_type(&type_name) {
        if btf.is_pointer(id) {
            return ArgumentKind::Pointer;
        }
        if let Some((signed, bits)) = btf.integer(id) {
            if bits > 0 && bits <= 64 {
                return if signed {
                    ArgumentKind::Signed(bits)
                } else {
                    ArgumentKind::Unsigned(bits)
                };
            }
        }
    }
    // Unknown: a whole register.
    ArgumentKind::Unsigned(64)
}
