//! A kernel profile: the struct layouts, symbols, per-CPU variables and system call
//! prototypes of one kernel, derived from its image.
//!
//! The query methods ([`Profile::offset`], [`Profile::symbol`], ...) are the contract the
//! walks, plugins and front ends use; how the profile is derived and stored is this
//! module's business.

use std::collections::HashMap;

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
    /// Not derived yet (placeholder while the derivation is written).
    #[error("kernel profile derivation is not available in this build")]
    Unavailable,
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
#[derive(Clone, Debug, Default)]
pub struct Profile {
    symbols: HashMap<String, u64>,
    per_cpu: HashMap<String, u64>,
    /// `(struct name, dotted field path)` → byte offset.
    offsets: HashMap<(String, String), u64>,
    sizes: HashMap<String, u64>,
    syscalls: Vec<SyscallInfo>,
}

impl Profile {
    /// Derives the profile of the kernel in `image` (a flat image or a compressed bzImage).
    pub fn derive(_image: &[u8]) -> Result<Profile, ProfileError> {
        Err(ProfileError::Unavailable)
    }

    /// The address of kernel symbol `name`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// The offset of per-CPU variable `name` in a CPU's per-CPU area.
    pub fn per_cpu(&self, name: &str) -> Option<u64> {
        self.per_cpu.get(name).copied()
    }

    /// The byte offset of `field` in `struct structure`; `field` may be a dotted path
    /// through embedded structs and unions (`f_path.dentry`).
    pub fn offset(&self, structure: &str, field: &str) -> Result<u64, ProfileError> {
        self.offsets
            .get(&(structure.to_string(), field.to_string()))
            .copied()
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

    /// The size of `struct structure` in bytes.
    pub fn size_of(&self, structure: &str) -> Result<u64, ProfileError> {
        self.sizes
            .get(structure)
            .copied()
            .ok_or_else(|| ProfileError::MissingType(format!("struct {structure}")))
    }

    /// The system calls, by number.
    pub fn syscalls(&self) -> &[SyscallInfo] {
        &self.syscalls
    }

    /// A profile from its parts, for tests of the walks over synthetic memory.
    pub fn from_parts(
        symbols: HashMap<String, u64>,
        per_cpu: HashMap<String, u64>,
        offsets: HashMap<(String, String), u64>,
        sizes: HashMap<String, u64>,
        syscalls: Vec<SyscallInfo>,
    ) -> Profile {
        Profile {
            symbols,
            per_cpu,
            offsets,
            sizes,
            syscalls,
        }
    }
}

impl pandare_core::KernelSymbols for Profile {
    fn symbol(&self, name: &str) -> Option<u64> {
        Profile::symbol(self, name)
    }

    fn per_cpu_variable(&self, name: &str) -> Option<u64> {
        self.per_cpu(name)
    }
}
