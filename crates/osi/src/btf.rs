//! BTF, the kernel's own description of its types (`CONFIG_DEBUG_INFO_BTF`).
//!
//! The format is Linux's `Documentation/bpf/btf.rst`: a 24-byte header, a type section
//! (records of 12 bytes plus kind-specific trailing data, type ids counted from 1 in
//! order, 0 being `void`) and a string section. Everything here is checked while the
//! blob is parsed (every type id, every string offset, every trailing record), so the
//! queries afterwards cannot index out of bounds; chains of typedefs and qualifiers and
//! nested anonymous members are followed with bounds, so a looping or absurdly deep blob
//! ends in an error or `None`, never in a hang.

use rustc_hash::FxHashMap;

use crate::profile::ProfileError;

/// The BTF header's first eight bytes: magic 0xEB9F (little-endian), version 1,
/// flags 0, header length 24.
pub(crate) const BTF_MAGIC: [u8; 8] = [0x9f, 0xeb, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00];

/// The longest typedef/qualifier chain or nesting of anonymous members followed; real
/// kernels stay below 10.
const MAX_CHAIN: usize = 64;

const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_ARRAY: u8 = 3;
const KIND_STRUCT: u8 = 4;
const KIND_UNION: u8 = 5;
const KIND_ENUM: u8 = 6;
const KIND_FWD: u8 = 7;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_FUNC_PROTO: u8 = 13;
const KIND_VAR: u8 = 14;
const KIND_DATASEC: u8 = 15;
const KIND_FLOAT: u8 = 16;
const KIND_DECL_TAG: u8 = 17;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// What kind of type a BTF type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TypeKind {
    /// `void` (type id 0).
    Void,
    /// An integer (or `char`, `_Bool`).
    Int {
        /// Whether it is signed.
        signed: bool,
        /// Its width in bits.
        bits: u32,
    },
    /// A pointer; [`TypeInfo::target`] is the pointee.
    Pointer,
    /// An array; [`TypeInfo::target`] is the element type, [`TypeInfo::length`] the count.
    Array,
    /// A struct.
    Struct,
    /// A union.
    Union,
    /// An enum (32-bit values or, with `ENUM64`, 64-bit).
    Enum {
        /// Whether its values are signed.
        signed: bool,
    },
    /// A forward declaration (`struct x;`), with no layout.
    Forward {
        /// Whether it declares a union (else a struct).
        union: bool,
    },
    /// A typedef; [`TypeInfo::target`] is the aliased type.
    Typedef,
    /// `volatile` of [`TypeInfo::target`].
    Volatile,
    /// `const` of [`TypeInfo::target`].
    Const,
    /// `restrict` of [`TypeInfo::target`].
    Restrict,
    /// A function; [`TypeInfo::target`] is its prototype.
    Function,
    /// A function prototype; [`TypeInfo::target`] is the return type, members the
    /// parameters (offsets 0).
    FunctionProto,
    /// A variable (per-CPU variables are the only ones in vmlinux BTF).
    Variable,
    /// A data section; members are its variables with their offsets.
    DataSection,
    /// A floating-point type.
    Float,
    /// A declaration tag (`btf_decl_tag`).
    DeclTag,
    /// A type tag (`__user`, `__rcu` with `btf_type_tag`).
    TypeTag,
}

/// A member of a struct or union (or a parameter of a function prototype, a variable
/// of a data section).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    /// Its name (empty for an anonymous struct or union member).
    pub name: String,
    /// Its type's id.
    pub type_id: u32,
    /// Its byte offset in the enclosing type (the byte holding its first bit).
    pub offset: u64,
    /// Its offset in bits from the start of the enclosing type.
    pub bit_offset: u64,
    /// Its width in bits when it is a bitfield.
    pub bit_size: Option<u32>,
}

/// A field reached from a type by a member name or a dotted path, with its offset from
/// the start of that type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldInfo {
    /// Its byte offset (the byte holding its first bit).
    pub offset: u64,
    /// Its offset in bits.
    pub bit_offset: u64,
    /// Its width in bits when it is a bitfield.
    pub bit_size: Option<u32>,
    /// Its type's id (as declared: typedefs and qualifiers not resolved).
    pub type_id: u32,
}

/// One enumerator of an enum.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnumeratorInfo {
    /// Its name.
    pub name: String,
    /// Its value (sign-extended for signed enums).
    pub value: i64,
}

/// A kernel type as BTF describes it, for typed navigation of kernel memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeInfo {
    /// Its BTF type id (0 is `void`).
    pub id: u32,
    /// Its kind.
    pub kind: TypeKind,
    /// Its name (empty when anonymous).
    pub name: String,
    /// Its size in bytes, following typedefs, qualifiers and arrays (`None` for `void`,
    /// functions and forward declarations).
    pub size: Option<u64>,
    /// The type it refers to: the pointee, array element, typedef or qualifier target,
    /// function prototype, return type, variable type.
    pub target: Option<u32>,
    /// The element count of an array.
    pub length: Option<u64>,
    /// Members of a struct or union, parameters of a prototype, variables of a section.
    pub members: Vec<MemberInfo>,
    /// Enumerators of an enum.
    pub enumerators: Vec<EnumeratorInfo>,
}

/// One type record, decoded from the blob's type section.
#[derive(Clone, Copy, Debug)]
struct Entry {
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    name_off: u32,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    /// Byte offset of the kind's trailing data in the type section.
    extra: u32,
}

/// A parsed BTF blob.
#[derive(Clone)]
pub(crate) struct Btf {
    raw: Vec<u8>,
    types_start: usize,
    strings: String,
    entries: Vec<Entry>,
    /// Named types by name (all ids, in id order).
    by_name: FxHashMap<Box<str>, Vec<u32>>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.raw.len())
            .field("types", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn malformed(what: impl Into<String>) -> ProfileError {
    ProfileError::Malformed(format!("BTF: {}", what.into()))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The length of the BTF blob starting at `bytes[0]` (header, types and strings), after
/// checking the header.
pub(crate) fn blob_len(bytes: &[u8]) -> Result<usize, ProfileError> {
    if bytes.len() < 24 || bytes[..8] != BTF_MAGIC {
        return Err(malformed("no BTF header"));
    }
    let field = |at| u32_at(bytes, at).map(|v| v as usize).unwrap_or(0);
    let (type_off, type_len, str_off, str_len) = (field(8), field(12), field(16), field(20));
    let end = |off: usize, len: usize| off.checked_add(len).and_then(|e| e.checked_add(24));
    let total = end(type_off, type_len)
        .zip(end(str_off, str_len))
        .map(|(a, b)| a.max(b))
        .ok_or_else(|| malformed("section sizes overflow"))?;
    if total > bytes.len() {
        return Err(malformed(format!(
            "the header describes {total} bytes but only {} follow it",
            bytes.len()
        )));
    }
    Ok(total)
}

impl Btf {
    /// Parses a BTF blob (header, type and string sections), checking all of it.
    pub(crate) fn parse(raw: Vec<u8>) -> Result<Btf, ProfileError> {
        let total = blob_len(&raw)?;
        let field = |at| u32_at(&raw, at).map(|v| v as usize).unwrap_or(0);
        let (type_off, type_len, str_off, str_len) = (field(8), field(12), field(16), field(20));
        let types_start = 24 + type_off;
        let types_end = types_start + type_len;
        let str_start = 24 + str_off;
        let str_end = str_start + str_len;
        debug_assert!(types_end <= total && str_end <= total);
        if str_len == 0 || raw[str_end - 1] != 0 || raw[str_start] != 0 {
            return Err(malformed(
                "the string section does not start and end with NUL",
            ));
        }
        let strings = std::str::from_utf8(&raw[str_start..str_end])
            .map_err(|_| malformed("the string section is not UTF-8"))?
            .to_string();
        let types = &raw[types_start..types_end];

        let check_name = |off: u32| -> Result<(), ProfileError> {
            if strings.get(off as usize..).is_none() {
                return Err(malformed(format!("string offset {off} is out of bounds")));
            }
            Ok(())
        };

        // Records are at least 12 bytes: the count is bounded by the section's size.
        let mut entries = Vec::with_capacity(type_len / 12 + 1);
        entries.push(Entry {
            kind: 0,
            kind_flag: false,
            vlen: 0,
            name_off: 0,
            size_or_type: 0,
            extra: 0,
        });
        let mut at = 0usize;
        while at < types.len() {
            let (Some(name_off), Some(info), Some(size_or_type)) = (
                u32_at(types, at),
                u32_at(types, at + 4),
                u32_at(types, at + 8),
            ) else {
                return Err(malformed(format!(
                    "type {} is cut off at the end of the type section",
                    entries.len()
                )));
            };
            let kind = ((info >> 24) & 0x1f) as u8;
            let vlen = (info & 0xffff) as u16;
            let kind_flag = info >> 31 != 0;
            let extra = at + 12;
            let trailing = match kind {
                KIND_INT => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_ENUM64 | KIND_DATASEC => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                KIND_VAR | KIND_DECL_TAG => 4,
                other => {
                    return Err(malformed(format!(
                        "type {} has unknown kind {other}",
                        entries.len()
                    )))
                }
            };
            let next = extra + trailing;
            if next > types.len() {
                return Err(malformed(format!(
                    "type {} is cut off at the end of the type section",
                    entries.len()
                )));
            }
            check_name(name_off)?;
            let extra = u32::try_from(extra).map_err(|_| malformed("type section too large"))?;
            entries.push(Entry {
                kind,
                kind_flag,
                vlen,
                name_off,
                size_or_type,
                extra,
            });
            at = next;
        }

        // Every reference must name an existing type, every trailing name a string.
        let count = entries.len() as u32;
        let check_id = |id: u32, owner: usize| -> Result<(), ProfileError> {
            if id >= count {
                return Err(malformed(format!(
                    "type {owner} refers to type {id}, beyond the {} types",
                    count - 1
                )));
            }
            Ok(())
        };
        for (id, e) in entries.iter().enumerate().skip(1) {
            let x = e.extra as usize;
            match e.kind {
                KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_VAR | KIND_DECL_TAG | KIND_TYPE_TAG | KIND_FUNC_PROTO => {
                    check_id(e.size_or_type, id)?;
                }
                _ => {}
            }
            match e.kind {
                KIND_ARRAY => {
                    check_id(u32_at(types, x).unwrap_or(u32::MAX), id)?;
                    check_id(u32_at(types, x + 4).unwrap_or(u32::MAX), id)?;
                }
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..e.vlen as usize {
                        let m = x + 12 * i;
                        check_name(u32_at(types, m).unwrap_or(u32::MAX))?;
                        check_id(u32_at(types, m + 4).unwrap_or(u32::MAX), id)?;
                    }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let step = if e.kind == KIND_ENUM { 8 } else { 12 };
                    for i in 0..e.vlen as usize {
                        check_name(u32_at(types, x + step * i).unwrap_or(u32::MAX))?;
                    }
                }
                KIND_FUNC_PROTO => {
                    for i in 0..e.vlen as usize {
                        let m = x + 8 * i;
                        check_name(u32_at(types, m).unwrap_or(u32::MAX))?;
                        check_id(u32_at(types, m + 4).unwrap_or(u32::MAX), id)?;
                    }
                }
                KIND_DATASEC => {
                    for i in 0..e.vlen as usize {
                        check_id(u32_at(types, x + 12 * i).unwrap_or(u32::MAX), id)?;
                    }
                }
                _ => {}
            }
        }

        let mut by_name: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
        by_name.reserve(entries.len() / 2);
        for (id, e) in entries.iter().enumerate().skip(1) {
            if e.name_off == 0 || matches!(e.kind, KIND_DECL_TAG | KIND_TYPE_TAG) {
                continue;
            }
            let name = str_at(&strings, e.name_off);
            match by_name.get_mut(name) {
                Some(ids) => ids.push(id as u32),
                None => {
                    by_name.insert(name.into(), vec![id as u32]);
                }
            }
        }

        Ok(Btf {
            raw,
            types_start,
            strings,
            entries,
            by_name,
        })
    }

    /// The blob as it was in the image.
    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The number of types (without `void`).
    pub(crate) fn type_count(&self) -> usize {
        self.entries.len() - 1
    }

    fn entry(&self, id: u32) -> Option<&Entry> {
        self.entries.get(id as usize)
    }

    fn word(&self, at: usize) -> u32 {
        u32_at(&self.raw, self.types_start + at).unwrap_or(0)
    }

    fn name(&self, off: u32) -> &str {
        str_at(&self.strings, off)
    }

    /// The name of type `id` (empty when anonymous).
    pub(crate) fn type_name(&self, id: u32) -> &str {
        self.entry(id).map_or("", |e| self.name(e.name_off))
    }

    /// The ids of the types named `name`.
    pub(crate) fn ids_named(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map_or(&[], |v| v.as_slice())
    }

    /// The type `name` names: `struct x`, `union x`, `enum x` select by kind; a bare
    /// name prefers a struct or union with a layout, then a typedef, an enum, a base
    /// type, then anything else.
    pub(crate) fn find_type(&self, name: &str) -> Option<u32> {
        let name = name.trim();
        let (wanted, bare): (&[u8], &str) = if let Some(rest) = name.strip_prefix("struct ") {
            (&[KIND_STRUCT], rest.trim())
        } else if let Some(rest) = name.strip_prefix("union ") {
            (&[KIND_UNION], rest.trim())
        } else if let Some(rest) = name.strip_prefix("enum ") {
            (&[KIND_ENUM, KIND_ENUM64], rest.trim())
        } else {
            (&[], name)
        };
        let ids = self.ids_named(bare);
        let rank = |kind: u8| match kind {
            KIND_STRUCT | KIND_UNION => 0,
            KIND_TYPEDEF => 1,
            KIND_ENUM | KIND_ENUM64 => 2,
            KIND_INT | KIND_FLOAT => 3,
            KIND_FWD => 5,
            _ => 4,
        };
        ids.iter()
            .copied()
            .filter(|&id| {
                let kind = self.entries[id as usize].kind;
                wanted.is_empty() || wanted.contains(&kind)
            })
            .min_by_key(|&id| rank(self.entries[id as usize].kind))
    }

    /// The first struct or union named `name` that has a layout.
    pub(crate) fn find_composite(&self, name: &str) -> Option<u32> {
        let id = self.find_type(name)?;
        let resolved = self.resolve(id)?;
        matches!(
            self.entries[resolved as usize].kind,
            KIND_STRUCT | KIND_UNION
        )
        .then_some(resolved)
    }

    /// Follows typedefs, qualifiers and type tags to the type they stand for.
    pub(crate) fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..MAX_CHAIN {
            let e = self.entry(id)?;
            match e.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = e.size_or_type;
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// The size in bytes of type `id`.
    pub(crate) fn size_of(&self, id: u32) -> Option<u64> {
        let mut id = id;
        let mut factor: u64 = 1;
        for _ in 0..MAX_CHAIN {
            let e = self.entry(id)?;
            match e.kind {
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_DATASEC
                | KIND_FLOAT => return factor.checked_mul(u64::from(e.size_or_type)),
                // Both architectures pandare emulates are 64-bit.
                KIND_PTR => return factor.checked_mul(8),
                KIND_ARRAY => {
                    let x = e.extra as usize;
                    factor = factor.checked_mul(u64::from(self.word(x + 8)))?;
                    id = self.word(x);
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                | KIND_VAR => id = e.size_or_type,
                _ => return None,
            }
        }
        None
    }

    /// The members of struct or union `id` (resolved), in order.
    pub(crate) fn members(&self, id: u32) -> impl Iterator<Item = RawMember> + '_ {
        let e = self.entry(id).copied();
        let count = match e {
            Some(e) if matches!(e.kind, KIND_STRUCT | KIND_UNION) => e.vlen as usize,
            _ => 0,
        };
        (0..count).map(move |i| {
            let e = e.expect("count is 0 without an entry");
            let at = e.extra as usize + 12 * i;
            let raw_offset = self.word(at + 8);
            let (bit_offset, bit_size) = if e.kind_flag {
                (raw_offset & 0xff_ffff, raw_offset >> 24)
            } else {
                (raw_offset, 0)
            };
            RawMember {
                name_off: self.word(at),
                type_id: self.word(at + 4),
                bit_offset: u64::from(bit_offset),
                bit_size,
            }
        })
    }

    /// Finds member `name` of composite `id`, looking into anonymous struct and union
    /// members as C does. Returns the member's type and its bit offset from `id`'s start.
    pub(crate) fn find_member(&self, id: u32, name: &str) -> Option<(u32, u64, u32)> {
        // Bounds the search of a malformed blob whose anonymous members contain
        // themselves (which would otherwise branch exponentially).
        let mut budget = 1usize << 16;
        self.find_member_within(id, name, 0, &mut budget)
    }

    fn find_member_within(
        &self,
        id: u32,
        name: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Option<(u32, u64, u32)> {
        if depth > MAX_CHAIN {
            return None;
        }
        for m in self.members(id) {
            *budget = budget.checked_sub(1)?;
            let member_name = self.name(m.name_off);
            if member_name == name {
                return Some((m.type_id, m.bit_offset, m.bit_size));
            }
            if member_name.is_empty() {
                let Some(inner) = self.resolve(m.type_id) else {
                    continue;
                };
                if let Some((t, off, size)) =
                    self.find_member_within(inner, name, depth + 1, budget)
                {
                    return Some((t, m.bit_offset + off, size));
                }
                if *budget == 0 {
                    return None;
                }
            }
        }
        None
    }

    /// The byte offset of the dotted `path` in composite `id`: members (through
    /// anonymous ones) and array elements (`mem[0]`).
    pub(crate) fn offset_of(&self, id: u32, path: &str) -> Option<u64> {
        self.field(id, path).map(|f| f.bit_offset / 8)
    }

    /// The field the dotted `path` names in composite `id` (see [`Btf::offset_of`]).
    pub(crate) fn field(&self, id: u32, path: &str) -> Option<FieldInfo> {
        let mut current = self.resolve(id)?;
        let mut field = FieldInfo {
            offset: 0,
            bit_offset: 0,
            bit_size: None,
            type_id: id,
        };
        for segment in path.split('.') {
            let (name, indices) = match segment.find('[') {
                Some(open) => (&segment[..open], &segment[open..]),
                None => (segment, ""),
            };
            if name.is_empty() {
                return None;
            }
            let (member_type, member_bits, bit_size) = self.find_member(current, name)?;
            field.bit_offset = field.bit_offset.checked_add(member_bits)?;
            field.bit_size = (bit_size != 0).then_some(bit_size);
            field.type_id = member_type;
            current = self.resolve(member_type)?;
            let mut rest = indices;
            while !rest.is_empty() {
                let close = rest.find(']')?;
                let index: u64 = rest.get(1..close)?.trim().parse().ok()?;
                rest = &rest[close + 1..];
                let e = self.entry(current)?;
                if e.kind != KIND_ARRAY {
                    return None;
                }
                let x = e.extra as usize;
                if index >= u64::from(self.word(x + 8)) {
                    return None;
                }
                let element = self.word(x);
                let size = self.size_of(element)?;
                field.bit_offset = field
                    .bit_offset
                    .checked_add(index.checked_mul(size)?.checked_mul(8)?)?;
                field.type_id = element;
                current = self.resolve(element)?;
            }
        }
        field.offset = field.bit_offset / 8;
        Some(field)
    }

    /// The variables of the data section named `section`, with their offsets.
    pub(crate) fn section_variables(&self, section: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for &id in self.ids_named(section) {
            let e = self.entries[id as usize];
            if e.kind != KIND_DATASEC {
                continue;
            }
            for i in 0..e.vlen as usize {
                let at = e.extra as usize + 12 * i;
                let var = self.word(at);
                let offset = self.word(at + 4);
                let name = self.type_name(var);
                if !name.is_empty() {
                    out.push((name.to_string(), u64::from(offset)));
                }
            }
        }
        out
    }

    /// Type `id`, described.
    pub(crate) fn type_info(&self, id: u32) -> Option<TypeInfo> {
        if id == 0 {
            return Some(TypeInfo {
                id: 0,
                kind: TypeKind::Void,
                name: "void".to_string(),
                size: None,
                target: None,
                length: None,
                members: Vec::new(),
                enumerators: Vec::new(),
            });
        }
        let e = *self.entry(id)?;
        let x = e.extra as usize;
        let mut info = TypeInfo {
            id,
            kind: TypeKind::Void,
            name: self.name(e.name_off).to_string(),
            size: self.size_of(id),
            target: None,
            length: None,
            members: Vec::new(),
            enumerators: Vec::new(),
        };
        info.kind = match e.kind {
            KIND_INT => {
                let encoding = self.word(x);
                TypeKind::Int {
                    signed: (encoding >> 24) & 1 != 0,
                    bits: encoding & 0xff,
                }
            }
            KIND_PTR => {
                info.target = Some(e.size_or_type);
                TypeKind::Pointer
            }
            KIND_ARRAY => {
                info.target = Some(self.word(x));
                info.length = Some(u64::from(self.word(x + 8)));
                TypeKind::Array
            }
            KIND_STRUCT | KIND_UNION => {
                info.members = self
                    .members(id)
                    .map(|m| MemberInfo {
                        name: self.name(m.name_off).to_string(),
                        type_id: m.type_id,
                        offset: m.bit_offset / 8,
                        bit_offset: m.bit_offset,
                        bit_size: (m.bit_size != 0).then_some(m.bit_size),
                    })
                    .collect();
                if e.kind == KIND_STRUCT {
                    TypeKind::Struct
                } else {
                    TypeKind::Union
                }
            }
            KIND_ENUM | KIND_ENUM64 => {
                let step = if e.kind == KIND_ENUM { 8 } else { 12 };
                for i in 0..e.vlen as usize {
                    let at = x + step * i;
                    let low = self.word(at + 4);
                    let value = if e.kind == KIND_ENUM {
                        if e.kind_flag {
                            i64::from(low as i32)
                        } else {
                            i64::from(low)
                        }
                    } else {
                        ((u64::from(self.word(at + 8)) << 32) | u64::from(low)) as i64
                    };
                    info.enumerators.push(EnumeratorInfo {
                        name: self.name(self.word(at)).to_string(),
                        value,
                    });
                }
                TypeKind::Enum {
                    signed: e.kind_flag,
                }
            }
            KIND_FWD => TypeKind::Forward { union: e.kind_flag },
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
            | KIND_FUNC | KIND_VAR | KIND_DECL_TAG => {
                info.target = Some(e.size_or_type);
                match e.kind {
                    KIND_TYPEDEF => TypeKind::Typedef,
                    KIND_VOLATILE => TypeKind::Volatile,
                    KIND_CONST => TypeKind::Const,
                    KIND_RESTRICT => TypeKind::Restrict,
                    KIND_TYPE_TAG => TypeKind::TypeTag,
                    KIND_FUNC => TypeKind::Function,
                    KIND_VAR => TypeKind::Variable,
                    _ => TypeKind::DeclTag,
                }
            }
            KIND_FUNC_PROTO => {
                info.target = Some(e.size_or_type);
                for i in 0..e.vlen as usize {
                    let at = x + 8 * i;
                    info.members.push(MemberInfo {
                        name: self.name(self.word(at)).to_string(),
                        type_id: self.word(at + 4),
                        offset: 0,
                        bit_offset: 0,
                        bit_size: None,
                    });
                }
                TypeKind::FunctionProto
            }
            KIND_DATASEC => {
                for i in 0..e.vlen as usize {
                    let at = x + 12 * i;
                    let var = self.word(at);
                    let offset = u64::from(self.word(at + 4));
                    info.members.push(MemberInfo {
                        name: self.type_name(var).to_string(),
                        type_id: var,
                        offset,
                        bit_offset: offset * 8,
                        bit_size: None,
                    });
                }
                TypeKind::DataSection
            }
            KIND_FLOAT => TypeKind::Float,
            _ => return None,
        };
        Some(info)
    }

    /// An integer type's signedness and width in bits (enums count as integers),
    /// after typedefs and qualifiers.
    pub(crate) fn integer(&self, id: u32) -> Option<(bool, u32)> {
        let id = self.resolve(id)?;
        let e = self.entry(id)?;
        match e.kind {
            KIND_INT => {
                let encoding = self.word(e.extra as usize);
                Some(((encoding >> 24) & 1 != 0, encoding & 0xff))
            }
            KIND_ENUM | KIND_ENUM64 => Some((e.kind_flag, e.size_or_type.saturating_mul(8))),
            _ => None,
        }
    }

    /// Whether type `id` is a pointer, after typedefs and qualifiers.
    pub(crate) fn is_pointer(&self, id: u32) -> bool {
        self.resolve(id)
            .and_then(|id| self.entry(id))
            .is_some_and(|e| e.kind == KIND_PTR)
    }
}

/// A struct or union member as stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawMember {
    name_off: u32,
    pub(crate) type_id: u32,
    pub(crate) bit_offset: u64,
    pub(crate) bit_size: u32,
}

/// The string at `off` (checked at parse time to be in bounds and on a character
/// boundary; the section ends with NUL).
fn str_at(strings: &str, off: u32) -> &str {
    let rest = strings.get(off as usize..).unwrap_or("");
    rest.split('\0').next().unwrap_or("")
}

/// Finds the BTF blob in `bytes`: the magic followed by a header whose sections fit.
/// `Ok(None)` when there is no magic at all; an error when every magic found starts a
/// header that does not fit (a truncated image).
pub(crate) fn find_blob(bytes: &[u8]) -> Result<Option<std::ops::Range<usize>>, ProfileError> {
    let mut first_error = None;
    for start in memchr::memmem::find_iter(bytes, &BTF_MAGIC) {
        match blob_len(&bytes[start..]) {
            Ok(len) if len > 24 => return Ok(Some(start..start + len)),
            Ok(_) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob from type records and a string section.
    pub(crate) fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut out = BTF_MAGIC.to_vec();
        for v in [
            0u32,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(types);
        out.extend_from_slice(strings);
        out
    }

    fn record(out: &mut Vec<u8>, name: u32, kind: u32, vlen: u32, flag: bool, st: u32) {
        out.extend_from_slice(&name.to_le_bytes());
        let info = (kind << 24) | vlen | if flag { 1 << 31 } else { 0 };
        out.extend_from_slice(&info.to_le_bytes());
        out.extend_from_slice(&st.to_le_bytes());
    }

    fn words(out: &mut Vec<u8>, words: &[u32]) {
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// `struct path { void *mnt; void *dentry; }`, `struct file { int x; union { int a;
    /// struct { int b; int c; }; }; struct path f_path; }` with bitfield `int bits:3`.
    fn sample() -> Vec<u8> {
        // strings: 0 "", 1 "int", 5 "path", 10 "mnt", 14 "dentry", 21 "file", 26 "x",
        // 28 "a", 30 "b", 32 "c", 34 "f_path", 41 "bits"
        let strings = b"\0int\0path\0mnt\0dentry\0file\0x\0a\0b\0c\0f_path\0bits\0".to_vec();
        let mut t = Vec::new();
        record(&mut t, 1, 1, 0, false, 4); // 1: int
        words(&mut t, &[(1 << 24) | 32]);
        record(&mut t, 0, 2, 0, false, 0); // 2: void *
        record(&mut t, 5, 4, 2, false, 16); // 3: struct path
        words(&mut t, &[10, 2, 0, 14, 2, 64]);
        record(&mut t, 0, 4, 2, false, 8); // 4: anonymous struct { b; c; }
        words(&mut t, &[30, 1, 0, 32, 1, 32]);
        record(&mut t, 0, 5, 2, false, 8); // 5: anonymous union { a; struct 4; }
        words(&mut t, &[28, 1, 0, 0, 4, 0]);
        record(&mut t, 21, 4, 4, true, 40); // 6: struct file
        words(
            &mut t,
            &[26, 1, 0, 0, 5, 64, 34, 3, 128, 41, 1, (3 << 24) | 288],
        );
        blob(&t, &strings)
    }

    #[test]
    fn offsets_follow_anonymous_members_and_nested_structs() {
        let btf = Btf::parse(sample()).expect("sample parses");
        let file = btf.find_composite("file").expect("struct file");
        assert_eq!(btf.offset_of(file, "x"), Some(0));
        assert_eq!(btf.offset_of(file, "a"), Some(8));
        assert_eq!(btf.offset_of(file, "c"), Some(12));
        assert_eq!(btf.offset_of(file, "f_path.dentry"), Some(24));
        assert_eq!(btf.offset_of(file, "f_path.nothing"), None);
        assert_eq!(btf.size_of(file), Some(40));
        let info = btf.type_info(file).expect("info");
        assert_eq!(info.members[3].bit_size, Some(3));
        assert_eq!(info.members[3].bit_offset, 288);
        assert_eq!(info.members[3].offset, 36);
    }

    #[test]
    fn references_beyond_the_types_are_malformed() {
        let mut bytes = sample();
        // struct path's first member's type id (types start at 24; record 1 is 16 bytes,
        // record 2 is 12, record 3's members start 12 bytes in).
        let at = 24 + 16 + 12 + 12 + 4;
        bytes[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(Btf::parse(bytes), Err(ProfileError::Malformed(_))));
    }

    #[test]
    fn typedef_loops_end() {
        let strings = b"\0t\0".to_vec();
        let mut t = Vec::new();
        record(&mut t, 1, 8, 0, false, 2); // 1: typedef t -> 2
        record(&mut t, 0, 10, 0, false, 1); // 2: const -> 1
        let btf = Btf::parse(blob(&t, &strings)).expect("loops are valid references");
        assert_eq!(btf.resolve(1), None);
        assert_eq!(btf.size_of(1), None);
        assert_eq!(btf.find_composite("t"), None);
    }

    #[test]
    fn every_single_byte_corruption_is_an_error_or_a_valid_blob() {
        let sample = sample();
        for at in 0..sample.len() {
            for value in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bytes = sample.clone();
                bytes[at] = value;
                if let Ok(btf) = Btf::parse(bytes) {
                    for id in 0..=btf.type_count() as u32 + 1 {
                        let _ = btf.type_info(id);
                        let _ = btf.size_of(id);
                        let _ = btf.offset_of(id, "f_path.dentry");
                        let _ = btf.offset_of(id, "a[3]");
                    }
                }
            }
        }
    }

    #[test]
    fn self_containing_anonymous_members_end() {
        let strings = b"\0s\0x\0".to_vec();
        let mut t = Vec::new();
        record(&mut t, 1, 4, 3, false, 8); // 1: struct s { struct s; struct s; int x?; }
        words(&mut t, &[0, 1, 0, 0, 1, 0, 0, 1, 0]);
        let btf = Btf::parse(blob(&t, &strings)).expect("valid references");
        assert_eq!(btf.offset_of(1, "x"), None);
    }
}
