//! A kernel profile: the struct layouts, symbols, per-CPU variables and system call
//! prototypes of one kernel, derived from its image.
//!
//! The query methods ([`Profile::offset`], [`Profile::symbol`], ...) are the contract the
//! walks, plugins and front ends use; how the profile is derived and stored is this
//! module's business.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::btf::Btf;
pub use crate::btf::{EnumeratorInfo, FieldInfo, MemberInfo, TypeInfo, TypeKind};
pub use crate::kallsyms::Symbol;
use crate::kallsyms::SymbolTable;
pub use crate::kernel_image::Architecture;
use crate::kernel_image::KernelImage;

/// Why a profile could not be derived, loaded or queried.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The image has no BTF.
    #[error("the kernel image has no BTF type information: OS introspection needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf,
    /// The image has no kallsyms.
    #[error("the kernel image has no kallsyms table: OS introspection needs a kernel built with CONFIG_KALLSYMS=y and CONFIG_KALLSYMS_ALL=y")]
    NoKallsyms,
    /// A type the walks need is not in the kernel's BTF.
    #[error("the kernel's BTF has no {0}")]
    MissingType(String),
    /// A field the walks need is not in the kernel's BTF.
    #[error("the kernel's struct {structure} has no field {field}")]
    MissingField {
        /// The struct.
        structure: String,
        /// The field path.
        field: String,
    },
    /// Something in the image is malformed.
    #[error("the kernel image is malformed: {0}")]
    Malformed(String),
    /// A serialized profile is damaged, truncated or from another format version.
    #[error("the saved kernel profile is unusable: {0}; delete it to derive the profile again from the kernel image")]
    BadSerialized(String),
    /// Reading or writing the kernel or the profile cache failed.
    #[error("{what} {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

/// How a system call argument is passed, for decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgumentKind {
    /// A signed integer of this many bits.
    Signed(u32),
    /// An unsigned integer of this many bits.
    Unsigned(u32),
    /// A NUL-terminated string in user memory (`const char __user *`).
    String,
    /// Any other pointer.
    Pointer,
}

/// One argument of a system call.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyscallArgument {
    /// Its name in the kernel's prototype (`filename`).
    pub name: String,
    /// Its C type as the kernel spells it (`const char __user *`).
    pub c_type: String,
    /// How to decode it.
    pub kind: ArgumentKind,
}

/// One system call of the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyscallInfo {
    /// Its number.
    pub number: u64,
    /// Its name without prefix (`openat`).
    pub name: String,
    /// Its arguments (at most 6); empty when the kernel has no prototype for it.
    pub arguments: Vec<SyscallArgument>,
}

/// What introspection needs about one kernel.
///
/// A derived profile keeps the kernel's whole BTF (so any struct, field or type can be
/// asked for, not only those the walks use) and all of kallsyms; a profile made with
/// [`Profile::from_parts`] answers from its explicit tables only.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    arch: Option<Architecture>,
    symbols: Arc<SymbolTable>,
    per_cpu: HashMap<String, u64>,
    btf: Option<Arc<Btf>>,
    /// Explicit `(struct name, dotted field path)` → byte offset (from parts); checked
    /// before BTF.
    offsets: HashMap<(String, String), u64>,
    /// Explicit struct sizes (from parts); checked before BTF.
    sizes: HashMap<String, u64>,
    syscalls: Vec<SyscallInfo>,
    /// Numbers of the system calls whose prototype came from the kernel's metadata.
    prototyped: Vec<u64>,
}

impl Profile {
    /// Derives the profile of the kernel in `image`: a flat riscv64/arm64 `Image`, an
    /// ELF `vmlinux`, or an x86 `bzImage` (ZSTD or XZ payload).
    ///
    /// Needs the kernel's BTF (`CONFIG_DEBUG_INFO_BTF`) and kallsyms
    /// (`CONFIG_KALLSYMS_ALL`); system call prototypes come from
    /// `CONFIG_FTRACE_SYSCALLS`'s metadata when the kernel has it.
    pub fn derive(image: &[u8]) -> Result<Profile, ProfileError> {
        let mut image = KernelImage::open(image)?;
        let btf_range = image.btf()?.ok_or(ProfileError::NoBtf)?;
        let btf = Btf::parse(image.bytes()[btf_range].to_vec())?;
        let symbols = SymbolTable::new(crate::kallsyms::decode(image.bytes())?);
        if image.bytes().starts_with(b"\x7fELF") {
            // Addresses come from the program headers.
        } else {
            // A flat image starts at `_start` (riscv64, arm64: the header is its first
            // instructions).
            let base = symbols
                .get("_start")
                .or_else(|| symbols.get("_text"))
                .map(|s| s.address)
                .ok_or_else(|| {
                    ProfileError::Malformed("kallsyms has neither _start nor _text".into())
                })?;
            image.set_flat_base(base);
        }
        let per_cpu = btf
            .section_variables(".data..percpu")
            .into_iter()
            .collect::<HashMap<_, _>>();
        let (syscalls, prototyped) = crate::syscall_table::read(&image, &symbols, &btf)?;
        Ok(Profile {
            arch: Some(image.arch()),
            symbols: Arc::new(symbols),
            per_cpu,
            btf: Some(Arc::new(btf)),
            offsets: HashMap::new(),
            sizes: HashMap::new(),
            syscalls,
            prototyped,
        })
    }

    /// The profile of the kernel at `image`, from `<cache_dir>/profiles/<sha256>.profile`
    /// when a previous derivation saved it there, else derived and saved (atomically).
    /// A damaged cache file is derived again and replaced.
    pub fn load_or_derive(image: &Path, cache_dir: &Path) -> Result<Profile, ProfileError> {
        use sha2::Digest;
        let bytes = std::fs::read(image).map_err(|error| ProfileError::Io {
            what: "cannot read the kernel image",
            path: image.to_path_buf(),
            error,
        })?;
        let hash = sha2::Sha256::digest(&bytes);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let dir = cache_dir.join("profiles");
        let path = dir.join(format!("{hex}.profile"));
        if let Ok(saved) = std::fs::read(&path) {
            if let Ok(profile) = Profile::from_bytes(&saved) {
                return Ok(profile);
            }
        }
        let profile = Profile::derive(&bytes)?;
        write_atomically(&dir, &path, &profile.to_bytes())?;
        Ok(profile)
    }

    /// [`Profile::load_or_derive`] with pandare's cache directory (`$PANDARE_CACHE_DIR`,
    /// else `~/.cache/pandare`, as for the guest images).
    pub fn load_or_derive_cached(image: &Path) -> Result<Profile, ProfileError> {
        Profile::load_or_derive(image, &pandare_images::cache_root())
    }

    /// The architecture of the kernel the profile was derived from.
    pub fn architecture(&self) -> Option<Architecture> {
        self.arch
    }

    /// The address of kernel symbol `name` (a global symbol when several share the
    /// name).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).map(|s| s.address)
    }

    /// Symbol `name`, or else a compiler-made copy of it (`finish_task_switch.isra.0`,
    /// `.constprop.0`, `.part.0`): the name and address of the first such symbol.
    pub fn symbol_or_variant(&self, name: &str) -> Option<(&str, u64)> {
        if let Some(s) = self.symbols.get(name) {
            return Some((s.name.as_str(), s.address));
        }
        let prefix = format!("{name}.");
        let found = self
            .symbols
            .with_prefix(&prefix)
            .find(|s| !s.name.ends_with(".cold"));
        found.map(|s| (s.name.as_str(), s.address))
    }

    /// All symbols whose names start with `prefix`, in name order.
    pub fn symbols_with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = &'a Symbol> {
        self.symbols.with_prefix(prefix)
    }

    /// The symbols at exactly `address`.
    pub fn symbols_at(&self, address: u64) -> &[Symbol] {
        self.symbols.at(address)
    }

    /// The symbol `address` falls in (the nearest at or below it), and the distance
    /// from it.
    pub fn symbol_containing(&self, address: u64) -> Option<(&Symbol, u64)> {
        self.symbols
            .containing(address)
            .map(|s| (s, address - s.address))
    }

    /// Every symbol, in address order.
    pub fn symbols(&self) -> &[Symbol] {
        self.symbols.all()
    }

    /// The offset of per-CPU variable `name` in a CPU's per-CPU area.
    pub fn per_cpu(&self, name: &str) -> Option<u64> {
        self.per_cpu.get(name).copied()
    }

    /// All per-CPU variables and their offsets.
    pub fn per_cpu_variables(&self) -> &HashMap<String, u64> {
        &self.per_cpu
    }

    /// The byte offset of `field` in `struct structure`; `field` may be a dotted path
    /// through embedded structs and unions (`f_path.dentry`), looks into anonymous
    /// members as C does (`d_name.len` inside `d_name`'s anonymous union), and may index
    /// arrays (`mem[0].base`).
    pub fn offset(&self, structure: &str, field: &str) -> Result<u64, ProfileError> {
        if !self.offsets.is_empty() {
            let key = (structure.to_string(), field.to_string());
            if let Some(&offset) = self.offsets.get(&key) {
                return Ok(offset);
            }
        }
        let btf = self
            .btf
            .as_ref()
            .ok_or_else(|| ProfileError::MissingField {
                structure: structure.to_string(),
                field: field.to_string(),
            })?;
        let id = btf
            .find_composite(structure)
            .ok_or_else(|| ProfileError::MissingType(format!("struct {structure}")))?;
        btf.offset_of(id, field)
            .ok_or_else(|| ProfileError::MissingField {
                structure: structure.to_string(),
                field: field.to_string(),
            })
    }

    /// The offset of the first of `fields` that `struct structure` has (for fields
    /// renamed across kernel versions).
    pub fn offset_any(&self, structure: &str, fields: &[&str]) -> Result<u64, ProfileError> {
        fields
            .iter()
            .find_map(|field| self.offset(structure, field).ok())
            .ok_or_else(|| ProfileError::MissingField {
                structure: structure.to_string(),
                field: fields.join(" or "),
            })
    }

    /// Whether `struct structure` has `field` (a dotted path as for [`Profile::offset`]).
    pub fn has_field(&self, structure: &str, field: &str) -> bool {
        self.offset(structure, field).is_ok()
    }

    /// The size of `struct structure` in bytes.
    pub fn size_of(&self, structure: &str) -> Result<u64, ProfileError> {
        if let Some(&size) = self.sizes.get(structure) {
            return Ok(size);
        }
        self.btf
            .as_ref()
            .and_then(|btf| btf.size_of(btf.find_composite(structure)?))
            .ok_or_else(|| ProfileError::MissingType(format!("struct {structure}")))
    }

    /// The kernel type `name` (`task_struct`, `struct file`, `pid_t`, `union x`,
    /// `enum pid_type`): a bare name prefers a struct or union, then a typedef, an enum,
    /// a base type. `None` without BTF or when the kernel has no such type.
    pub fn type_by_name(&self, name: &str) -> Option<TypeInfo> {
        let btf = self.btf.as_ref()?;
        btf.type_info(btf.find_type(name)?)
    }

    /// The kernel type with BTF id `id` (as [`TypeInfo::target`] and
    /// [`MemberInfo::type_id`] name them); 0 is `void`.
    pub fn type_by_id(&self, id: u32) -> Option<TypeInfo> {
        self.btf.as_ref()?.type_info(id)
    }

    /// The field `path` names in the type with id `type_id` (a struct or union, or a
    /// typedef of one): a member name, looked up through anonymous members as C does, or
    /// a dotted path with array indices as for [`Profile::offset`]. This is one step of
    /// typed navigation: `task_struct` → `mm` → (pointer target) `mm_struct` → `mm_mt`.
    pub fn field_of(&self, type_id: u32, path: &str) -> Option<FieldInfo> {
        self.btf.as_ref()?.field(type_id, path)
    }

    /// The field `path` names in `struct structure` (see [`Profile::field_of`]).
    pub fn field(&self, structure: &str, path: &str) -> Result<FieldInfo, ProfileError> {
        let btf = self
            .btf
            .as_ref()
            .ok_or_else(|| ProfileError::MissingField {
                structure: structure.to_string(),
                field: path.to_string(),
            })?;
        let id = btf
            .find_composite(structure)
            .ok_or_else(|| ProfileError::MissingType(format!("struct {structure}")))?;
        btf.field(id, path)
            .ok_or_else(|| ProfileError::MissingField {
                structure: structure.to_string(),
                field: path.to_string(),
            })
    }

    /// The type `id` stands for after typedefs, `const`, `volatile`, `restrict` and
    /// type tags (`None` for a loop or an unknown id).
    pub fn resolve_type(&self, id: u32) -> Option<TypeInfo> {
        let btf = self.btf.as_ref()?;
        btf.type_info(btf.resolve(id)?)
    }

    /// The number of BTF types (0 without BTF).
    pub fn type_count(&self) -> usize {
        self.btf.as_ref().map_or(0, |btf| btf.type_count())
    }

    /// The system calls, by number.
    pub fn syscalls(&self) -> &[SyscallInfo] {
        &self.syscalls
    }

    /// System call `number`, if the kernel has it.
    pub fn syscall(&self, number: u64) -> Option<&SyscallInfo> {
        self.syscalls
            .binary_search_by_key(&number, |s| s.number)
            .ok()
            .map(|i| &self.syscalls[i])
    }

    /// The system call named `name` (without prefix: `openat`).
    pub fn syscall_named(&self, name: &str) -> Option<&SyscallInfo> {
        self.syscalls.iter().find(|s| s.name == name)
    }

    /// Whether system call `number`'s prototype came from the kernel's own metadata
    /// (else it has a name but no argument list).
    pub fn syscall_has_prototype(&self, number: u64) -> bool {
        self.prototyped.binary_search(&number).is_ok()
    }

    /// A profile from its parts, for tests of the walks over synthetic memory.
    pub fn from_parts(
        symbols: HashMap<String, u64>,
        per_cpu: HashMap<String, u64>,
        offsets: HashMap<(String, String), u64>,
        sizes: HashMap<String, u64>,
        syscalls: Vec<SyscallInfo>,
    ) -> Profile {
        let symbols = symbols
            .into_iter()
            .map(|(name, address)| Symbol {
                name,
                address,
                kind: 'D',
            })
            .collect();
        let mut syscalls = syscalls;
        syscalls.sort_by_key(|s| s.number);
        let prototyped = syscalls.iter().map(|s| s.number).collect::<Vec<_>>();
        let mut prototyped = prototyped;
        prototyped.sort_unstable();
        Profile {
            arch: None,
            symbols: Arc::new(SymbolTable::new(symbols)),
            per_cpu,
            btf: None,
            offsets,
            sizes,
            syscalls,
            prototyped,
        }
    }

    /// The profile as bytes (versioned, checksummed, ZSTD-compressed), for the cache
    /// and for recordings. Keeps the whole BTF, so a reloaded profile answers every
    /// query a derived one does.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::serialize::to_bytes(self)
    }

    /// A profile from [`Profile::to_bytes`]'s bytes; damaged, truncated or
    /// other-version input is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Profile, ProfileError> {
        crate::serialize::from_bytes(bytes)
    }

    /// The parts, for serialization.
    pub(crate) fn parts(&self) -> ProfileParts<'_> {
        ProfileParts {
            arch: self.arch,
            btf: self.btf.as_ref().map(|b| b.raw()),
            symbols: self.symbols.all(),
            per_cpu: &self.per_cpu,
            offsets: &self.offsets,
            sizes: &self.sizes,
            syscalls: &self.syscalls,
            prototyped: &self.prototyped,
        }
    }

    /// A profile from deserialized parts.
    pub(crate) fn assemble(parts: OwnedParts) -> Profile {
        let mut prototyped = parts.prototyped;
        prototyped.sort_unstable();
        let mut syscalls = parts.syscalls;
        syscalls.sort_by_key(|s| s.number);
        Profile {
            arch: parts.arch,
            symbols: Arc::new(SymbolTable::new(parts.symbols)),
            per_cpu: parts.per_cpu,
            btf: parts.btf.map(Arc::new),
            offsets: parts.offsets,
            sizes: parts.sizes,
            syscalls,
            prototyped,
        }
    }
}

/// A profile's contents, deserialized.
#[derive(Debug)]
pub(crate) struct OwnedParts {
    pub(crate) arch: Option<Architecture>,
    pub(crate) btf: Option<Btf>,
    pub(crate) symbols: Vec<Symbol>,
    pub(crate) per_cpu: HashMap<String, u64>,
    pub(crate) offsets: HashMap<(String, String), u64>,
    pub(crate) sizes: HashMap<String, u64>,
    pub(crate) syscalls: Vec<SyscallInfo>,
    pub(crate) prototyped: Vec<u64>,
}

/// A profile's contents, borrowed for serialization.
#[derive(Debug)]
pub(crate) struct ProfileParts<'a> {
    pub(crate) arch: Option<Architecture>,
    pub(crate) btf: Option<&'a [u8]>,
    pub(crate) symbols: &'a [Symbol],
    pub(crate) per_cpu: &'a HashMap<String, u64>,
    pub(crate) offsets: &'a HashMap<(String, String), u64>,
    pub(crate) sizes: &'a HashMap<String, u64>,
    pub(crate) syscalls: &'a [SyscallInfo],
    pub(crate) prototyped: &'a [u64],
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over `path`.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    use std::io::Write;
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |error| ProfileError::Io { what, path, error }
    };
    std::fs::create_dir_all(dir).map_err(io("cannot create the profile cache", dir))?;
    // Unique per process and per call: threads deriving the same kernel at once each
    // write their own file, and the last rename wins with identical bytes.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("profile"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ProfileError::Io {
            what: "cannot write the kernel profile",
            path: path.to_path_buf(),
            error,
        });
    }
    Ok(())
}

impl pandare_core::KernelSymbols for Profile {
    fn symbol(&self, name: &str) -> Option<u64> {
        Profile::symbol(self, name)
    }

    fn per_cpu_variable(&self, name: &str) -> Option<u64> {
        self.per_cpu(name)
    }
}
