//! Memory mappings: the `vm_area_struct`s of an address space, found in its maple tree
//! (`mm->mm_mt`, Linux 6.1+), with the names `/proc/PID/maps` shows.
//!
//! A maple tree's root is an encoded node pointer (`(root & 3) == 2`, above 4096) or, for a
//! tree of one entry at index 0, the entry itself. An encoded node is the 256-byte-aligned
//! node's address with its type in bits 3–6: `maple_leaf_64` (1) and `maple_range_64` (2)
//! hold 15 pivots at byte 8 and 16 slots at byte 128 (metadata, when the node is not full,
//! in the last slot: its first byte is the index of the last slot in use);
//! `maple_arange_64` (3) holds 9 pivots at 8, 10 slots at 80, gaps at 160, metadata at 240.
//! Slot `i` covers `pivot[i-1]+1 ..= pivot[i]`, the last slot up to the node's maximum.
//! Leaves (types below 2) hold `vm_area_struct` pointers; values with `(v & 3) == 2` are the
//! tree's internal markers, not areas. A node whose parent pointer points to itself is dead
//! (replaced while the walk read it).

use pandare_core::instrument::GuestCpu;

use crate::kernel::{limits, Kernel, Mapping, WalkError};

/// Bytes of a maple node.
const NODE_SIZE: usize = 256;
/// Linux's page size on the architectures it runs pandare's guests with (`vm_pgoff` unit).
const PAGE_SIZE: u64 = 4096;

/// What a node type looks like.
struct NodeShape {
    pivots: usize,
    slots_at: usize,
    meta_at: usize,
    leaf: bool,
}

fn shape(kind: u64) -> Option<NodeShape> {
    match kind {
        1 | 2 => Some(NodeShape {
            pivots: 15,
            slots_at: 128,
            meta_at: 248,
            leaf: kind == 1,
        }),
        3 => Some(NodeShape {
            pivots: 9,
            slots_at: 80,
            meta_at: 240,
            leaf: false,
        }),
        _ => None,
    }
}

/// The parts of an `mm_struct` that name anonymous areas.
#[derive(Clone, Copy, Debug)]
struct Special {
    start_brk: u64,
    brk: u64,
    start_stack: u64,
}

impl Kernel {
    /// The `mm_struct` of `task`, 0 for a kernel thread.
    pub(crate) fn task_mm(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<u64, WalkError> {
        let offset = self.task_layout()?.mm;
        self.read_kernel_pointer(cpu, task.wrapping_add(offset), "task_struct.mm")
    }

    /// The `vm_area_struct` pointers of the maple tree of `mm`, in address order; with
    /// `address`, only the area the tree files that address under (at most one).
    pub fn areas(
        &self,
        cpu: &mut dyn GuestCpu,
        mm: u64,
        address: Option<u64>,
    ) -> Result<Vec<u64>, WalkError> {
        let layout = *self.mm_layout()?;
        let root = self.read_pointer(
            cpu,
            mm.wrapping_add(layout.mm_mt).wrapping_add(layout.ma_root),
            "mm_struct.mm_mt.ma_root",
        )?;
        let mut areas = Vec::new();
        if root == 0 {
            return Ok(areas);
        }
        let max = if self.pointer_size == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if root & 3 == 2 && root > 4096 {
            let mut nodes = 0;
            self.walk_node(cpu, root, 0, max, 0, address, &mut areas, &mut nodes)?;
        } else if address.is_none_or(|address| address == 0) {
            // A tree of a single entry at index 0.
            areas.push(root);
        }
        Ok(areas)
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_node(
        &self,
        cpu: &mut dyn GuestCpu,
        enode: u64,
        min: u64,
        max: u64,
        depth: usize,
        target: Option<u64>,
        areas: &mut Vec<u64>,
        nodes: &mut usize,
    ) -> Result<(), WalkError> {
        if depth > limits::DEPTH {
            return Err(WalkError::TooLong {
                what: "maple tree levels",
                limit: limits::DEPTH,
            });
        }
        *nodes += 1;
        if *nodes > limits::NODES {
            return Err(WalkError::TooLong {
                what: "maple tree nodes",
                limit: limits::NODES,
            });
        }
        let node = enode & !0xff;
        let kind = (enode >> 3) & 0xf;
        if !cpu.abi().is_kernel_address(node) {
            return Err(WalkError::Inconsistent(format!(
                "maple node {enode:#x} is not a kernel address"
            )));
        }
        let Some(shape) = shape(kind) else {
            return Err(WalkError::Inconsistent(format!(
                "maple node {enode:#x} has type {kind}, not one an address space uses"
            )));
        };
        let mut bytes = [0u8; NODE_SIZE];
        self.read(cpu, node, &mut bytes, "maple node")?;
        let word = |index: usize| {
            let at = index * 8;
            self.decode(&bytes[at..at + 8])
        };
        if word(0) & !0xff == node {
            return Err(WalkError::Inconsistent(format!(
                "maple node {node:#x} is dead: the tree changed while it was read"
            )));
        }
        let pivot = |index: usize| word(1 + index);
        let meta_end = usize::from(bytes[shape.meta_at]);
        let end = if kind == 3 || pivot(shape.pivots - 1) == 0 {
            meta_end
        } else if pivot(shape.pivots - 1) == max {
            shape.pivots - 1
        } else {
            shape.pivots
        };
        if end > shape.pivots {
            return Err(WalkError::Inconsistent(format!(
                "maple node {node:#x} claims {} slots, its type has {}",
                end + 1,
                shape.pivots + 1
            )));
        }
        let mut low = min;
        for index in 0..=end {
            let high = if index < shape.pivots && (index < end || pivot(index) != 0) {
                pivot(index)
            } else {
                max
            };
            if high < low || high > max {
                return Err(WalkError::Inconsistent(format!(
                    "maple node {node:#x}: slot {index} ends at {high:#x}, outside {low:#x}..={max:#x}"
                )));
            }
            let slot = word(shape.slots_at / 8 + index);
            let wanted = target.is_none_or(|target| (low..=high).contains(&target));
            if wanted && slot != 0 {
                if shape.leaf {
                    if slot & 3 != 2 {
                        areas.push(slot);
                    }
                } else {
                    self.walk_node(cpu, slot, low, high, depth + 1, target, areas, nodes)?;
                }
            }
            if high == max {
                break;
            }
            low = high + 1;
        }
        Ok(())
    }

    /// The memory mappings of `task`'s address space, in address order, named as
    /// `/proc/PID/maps` names them (empty for a kernel thread).
    pub fn mappings(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<Mapping>, WalkError> {
        let mm = self.task_mm(cpu, task)?;
        if mm == 0 {
            return Ok(Vec::new());
        }
        let areas = self.areas(cpu, mm, None)?;
        let special = self.special(cpu, mm)?;
        let mut mappings = Vec::with_capacity(areas.len());
        for area in areas {
            let mapping = self.mapping_of_area(cpu, area, &special)?;
            if mappings
                .last()
                .is_some_and(|last: &Mapping| last.base + last.size > mapping.base)
            {
                return Err(WalkError::Inconsistent(format!(
                    "mapping at {:#x} overlaps the one before it: the tree changed under the walk",
                    mapping.base
                )));
            }
            mappings.push(mapping);
        }
        Ok(mappings)
    }

    /// The mapping of `task`'s address space that holds `address`, if any (a descent of the
    /// maple tree, not a walk of every area).
    pub fn mapping_by_address(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
        address: u64,
    ) -> Result<Option<Mapping>, WalkError> {
        let mm = self.task_mm(cpu, task)?;
        if mm == 0 {
            return Ok(None);
        }
        let areas = self.areas(cpu, mm, Some(address))?;
        let special = self.special(cpu, mm)?;
        for area in areas {
            let mapping = self.mapping_of_area(cpu, area, &special)?;
            if (mapping.base..mapping.base + mapping.size).contains(&address) {
                return Ok(Some(mapping));
            }
        }
        Ok(None)
    }

    fn special(&self, cpu: &mut dyn GuestCpu, mm: u64) -> Result<Special, WalkError> {
        let layout = *self.mm_layout()?;
        Ok(Special {
            start_brk: self.read_pointer(
                cpu,
                mm.wrapping_add(layout.start_brk),
                "mm_struct.start_brk",
            )?,
            brk: self.read_pointer(cpu, mm.wrapping_add(layout.brk), "mm_struct.brk")?,
            start_stack: self.read_pointer(
                cpu,
                mm.wrapping_add(layout.start_stack),
                "mm_struct.start_stack",
            )?,
        })
    }

    fn mapping_of_area(
        &self,
        cpu: &mut dyn GuestCpu,
        area: u64,
        special: &Special,
    ) -> Result<Mapping, WalkError> {
        let layout = *self.vma_layout()?;
        if !cpu.abi().is_kernel_address(area) {
            return Err(WalkError::Inconsistent(format!(
                "memory area {area:#x} is not a kernel address"
            )));
        }
        let start = self.read_pointer(
            cpu,
            area.wrapping_add(layout.vm_start),
            "vm_area_struct.vm_start",
        )?;
        let end = self.read_pointer(
            cpu,
            area.wrapping_add(layout.vm_end),
            "vm_area_struct.vm_end",
        )?;
        if end <= start {
            return Err(WalkError::Inconsistent(format!(
                "memory area {area:#x} spans {start:#x}..{end:#x}"
            )));
        }
        let flags = self.read_pointer(
            cpu,
            area.wrapping_add(layout.vm_flags),
            "vm_area_struct.vm_flags",
        )?;
        let pgoff = self.read_pointer(
            cpu,
            area.wrapping_add(layout.vm_pgoff),
            "vm_area_struct.vm_pgoff",
        )?;
        let file = self.read_kernel_pointer(
            cpu,
            area.wrapping_add(layout.vm_file),
            "vm_area_struct.vm_file",
        )?;
        let path = if file != 0 {
            Some(self.file_path(cpu, file)?)
        } else {
            self.special_name(cpu, area, start, end, special)?
        };
        let name = path.as_ref().map(|path| {
            if path.starts_with('[') {
                path.clone()
            } else {
                path.rsplit('/').next().unwrap_or(path).to_string()
            }
        });
        Ok(Mapping {
            area,
            base: start,
            size: end - start,
            file: path,
            name,
            // As /proc/PID/maps: an anonymous area's vm_pgoff is its address in pages.
            offset: if file != 0 {
                pgoff.wrapping_mul(PAGE_SIZE)
            } else {
                0
            },
            flags,
        })
    }

    /// The name `/proc/PID/maps` gives an area without a file: the name of a special
    /// mapping (`[vdso]`, `[vvar]`), `[heap]`, `[stack]`, or none.
    fn special_name(
        &self,
        cpu: &mut dyn GuestCpu,
        area: u64,
        start: u64,
        end: u64,
        special: &Special,
    ) -> Result<Option<String>, WalkError> {
        let layout = *self.vma_layout()?;
        let ops = self.read_kernel_pointer(
            cpu,
            area.wrapping_add(layout.vm_ops),
            "vm_area_struct.vm_ops",
        )?;
        if ops != 0 {
            let namer = self.read_pointer(
                cpu,
                ops.wrapping_add(layout.ops_name),
                "vm_operations_struct.name",
            )?;
            if namer != 0 && Some(namer) == self.symbols.special_mapping_name {
                let mapping = self.read_kernel_pointer(
                    cpu,
                    area.wrapping_add(layout.vm_private_data),
                    "vm_area_struct.vm_private_data",
                )?;
                if mapping != 0 {
                    let text = self.read_kernel_pointer(
                        cpu,
                        mapping.wrapping_add(layout.special_name),
                        "vm_special_mapping.name",
                    )?;
                    if text != 0 {
                        let name =
                            self.read_c_string(cpu, text, limits::NAME, "special mapping name")?;
                        return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
                    }
                }
            }
        }
        if start <= special.brk && end >= special.start_brk {
            return Ok(Some("[heap]".to_string()));
        }
        if start <= special.start_stack && end >= special.start_stack {
            return Ok(Some("[stack]".to_string()));
        }
        Ok(None)
    }
}
