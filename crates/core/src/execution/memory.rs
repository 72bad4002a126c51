//! A data access's firing order.
//!
//! A load fires `virt_mem_before_read`, translates, fires `phys_mem_before_read`, reads
//! (from RAM, or a device: then `mmio_after_read` may change the value; or nothing: then
//! `unassigned_io_read` may answer), then `virt_mem_after_read` and `phys_mem_after_read`
//! with the data. A store fires `virt_mem_before_write`, translates, `phys_mem_before_write`,
//! `mmio_before_write` (which may change the value) when the address is not RAM, writes
//! (`unassigned_io_write` may accept a write to nothing), then `virt_mem_after_write` and
//! `phys_mem_after_write`. An access that faults fires no after-callbacks. The accesses take
//! the same path as the uninstrumented executor (TLB hit or slow path), so instrumentation
//! never changes what the guest sees.

use super::{fire, CpuView, Hooks};

/// What the memory protocol needs from an architecture's CPU and bus, seen through the
/// callbacks' view.
pub trait DataAccess: CpuView {
    /// Why an access did not complete as a plain RAM access (a trap, a device access that
    /// ends the executor's slice, a write to translated code).
    type Stop;
    /// The physical address of a data access the way the executor would find it: from the
    /// TLB when it holds the page (which may be stale, exactly as for an uninstrumented
    /// run), else `None`.
    fn tlb_physical(&self, vaddr: u64, size: u64, write: bool) -> Option<u64>;
    /// Translates a data access that missed the TLB (page walk, permission checks).
    fn translate(&mut self, vaddr: u64, write: bool) -> Result<u64, Self::Stop>;
    /// Loads `size` bytes: from RAM at `hit` (a TLB hit), or through the slow path.
    fn load(&mut self, hit: Option<u64>, vaddr: u64, size: u64) -> Result<u64, Self::Stop>;
    /// Stores `size` bytes of `value`: to RAM at `hit` (a TLB hit, if that page still holds
    /// no translated code), or through the slow path.
    fn store(
        &mut self,
        hit: Option<u64>,
        vaddr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), Self::Stop>;
    /// Whether `paddr..paddr + size` is RAM.
    fn is_ram(&self, paddr: u64, size: u64) -> bool;
    /// Reads `size` bytes of RAM at `paddr` without side effects; 0 when that is not RAM.
    fn peek(&self, paddr: u64, size: u64) -> u64;
    /// The value a device answered, when the access reached one.
    fn device_value(stop: &mut Self::Stop) -> Option<&mut u64>;
    /// A device-like answer with `value` (an unassigned read a callback answered).
    fn device_answer(value: u64) -> Self::Stop;
    /// Whether the access faulted because nothing is at the physical address.
    fn is_access_fault(stop: &Self::Stop, write: bool) -> bool;
    /// Whether the access trapped.
    fn is_trap(stop: &Self::Stop) -> bool;
}

fn bytes_of(value: u64, size: u64) -> ([u8; 8], usize) {
    (value.to_le_bytes(), size as usize)
}

impl Hooks {
    /// A load of `size` bytes at `vaddr` by the instruction at `pc`, with the memory
    /// callbacks around it.
    pub fn load<C: DataAccess>(
        &mut self,
        cpu: &mut C,
        pc: u64,
        vaddr: u64,
        size: u64,
    ) -> Result<u64, C::Stop> {
        let n = size as usize;
        fire!(
            &mut self.instr,
            &mut *cpu,
            VirtMemBeforeRead,
            |cb, view| cb(view, pc, vaddr, n)
        );
        let hit = cpu.tlb_physical(vaddr, size, false);
        let paddr = match hit {
            Some(paddr) => paddr,
            None => cpu.translate(vaddr, false)?,
        };
        fire!(
            &mut self.instr,
            &mut *cpu,
            PhysMemBeforeRead,
            |cb, view| cb(view, pc, paddr, n)
        );
        let mut result = cpu.load(hit, vaddr, size);
        let in_ram = cpu.is_ram(paddr, size);
        if let Err(stop) = &mut result {
            if let Some(value) = C::device_value(stop) {
                fire!(&mut self.instr, &mut *cpu, MmioAfterRead, |cb, view| cb(
                    view, paddr, vaddr, n, value
                ));
            } else if C::is_access_fault(stop, false) && !in_ram {
                let mut answer = None;
                fire!(&mut self.instr, &mut *cpu, UnassignedIoRead, |cb, view| {
                    let mut value = 0;
                    if answer.is_none() && cb(view, pc, paddr, n, &mut value) {
                        answer = Some(value);
                    }
                });
                if let Some(value) = answer {
                    result = Err(C::device_answer(value));
                }
            }
        }
        let value = match &mut result {
            Ok(value) => *value,
            Err(stop) => match C::device_value(stop) {
                Some(value) => *value,
                None => return result,
            },
        };
        let (data, len) = bytes_of(value, size);
        fire!(&mut self.instr, &mut *cpu, VirtMemAfterRead, |cb, view| cb(
            view,
            pc,
            vaddr,
            n,
            &data[..len]
        ));
        fire!(&mut self.instr, &mut *cpu, PhysMemAfterRead, |cb, view| cb(
            view,
            pc,
            paddr,
            n,
            &data[..len]
        ));
        result
    }

    /// A store of the low `size` bytes of `value` at `vaddr` by the instruction at `pc`,
    /// with the memory callbacks around it.
    pub fn store<C: DataAccess>(
        &mut self,
        cpu: &mut C,
        pc: u64,
        vaddr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), C::Stop> {
        let n = size as usize;
        let mut value = value;
        let (data, len) = bytes_of(value, size);
        fire!(
            &mut self.instr,
            &mut *cpu,
            VirtMemBeforeWrite,
            |cb, view| cb(view, pc, vaddr, n, &data[..len])
        );
        let hit = cpu.tlb_physical(vaddr, size, true);
        let paddr = match hit {
            Some(paddr) => paddr,
            None => cpu.translate(vaddr, true)?,
        };
        fire!(
            &mut self.instr,
            &mut *cpu,
            PhysMemBeforeWrite,
            |cb, view| cb(view, pc, paddr, n, &data[..len])
        );
        let in_ram = cpu.is_ram(paddr, size);
        if !in_ram {
            fire!(&mut self.instr, &mut *cpu, MmioBeforeWrite, |cb, view| cb(
                view, paddr, vaddr, n, &mut value
            ));
        }
        let mut result = cpu.store(hit, vaddr, size, value);
        if let Err(stop) = &result {
            if C::is_access_fault(stop, true) && !in_ram {
                let mut handled = false;
                fire!(&mut self.instr, &mut *cpu, UnassignedIoWrite, |cb, view| {
                    handled |= cb(view, pc, paddr, n, value);
                });
                if handled {
                    result = Ok(());
                }
            }
        }
        if matches!(&result, Err(stop) if C::is_trap(stop)) {
            return result;
        }
        let (data, len) = bytes_of(value, size);
        fire!(
            &mut self.instr,
            &mut *cpu,
            VirtMemAfterWrite,
            |cb, view| cb(view, pc, vaddr, n, &data[..len])
        );
        fire!(
            &mut self.instr,
            &mut *cpu,
            PhysMemAfterWrite,
            |cb, view| cb(view, pc, paddr, n, &data[..len])
        );
        result
    }

    /// An instruction whose memory access the executor cannot split from its execution
    /// (floating-point loads and stores, atomics), with the memory callbacks around it.
    /// `access` describes it; `paddr` is where it will land if known. `execute` runs the
    /// instruction and says whether it wrote (a failed store-conditional writes nothing).
    /// The after-callbacks see the data the instruction read or wrote.
    pub fn around_access<C: DataAccess, R>(
        &mut self,
        cpu: &mut C,
        access: Access,
        paddr: Option<u64>,
        execute: impl FnOnce(&mut C) -> (Result<R, C::Stop>, bool),
    ) -> Result<R, C::Stop> {
        let Access {
            pc,
            vaddr,
            size,
            reads,
            writes,
            source,
        } = access;
        let n = size as usize;
        let memory = |cpu: &C| paddr.map_or(0, |paddr| cpu.peek(paddr, size));
        if reads {
            fire!(
                &mut self.instr,
                &mut *cpu,
                VirtMemBeforeRead,
                |cb, view| cb(view, pc, vaddr, n)
            );
            if let Some(paddr) = paddr {
                fire!(
                    &mut self.instr,
                    &mut *cpu,
                    PhysMemBeforeRead,
                    |cb, view| cb(view, pc, paddr, n)
                );
            }
        }
        if writes {
            fire!(
                &mut self.instr,
                &mut *cpu,
                VirtMemBeforeWrite,
                |cb, view| cb(view, pc, vaddr, n, &source[..n])
            );
            if let Some(paddr) = paddr {
                fire!(
                    &mut self.instr,
                    &mut *cpu,
                    PhysMemBeforeWrite,
                    |cb, view| cb(view, pc, paddr, n, &source[..n])
                );
            }
        }
        let before = memory(cpu);
        let (result, wrote) = execute(cpu);
        if matches!(&result, Err(stop) if C::is_trap(stop)) {
            return result;
        }
        if reads {
            let data = before.to_le_bytes();
            fire!(&mut self.instr, &mut *cpu, VirtMemAfterRead, |cb, view| cb(
                view,
                pc,
                vaddr,
                n,
                &data[..n]
            ));
            if let Some(paddr) = paddr {
                fire!(&mut self.instr, &mut *cpu, PhysMemAfterRead, |cb, view| cb(
                    view,
                    pc,
                    paddr,
                    n,
                    &data[..n]
                ));
            }
        }
        if writes && wrote {
            let data = memory(cpu).to_le_bytes();
            fire!(
                &mut self.instr,
                &mut *cpu,
                VirtMemAfterWrite,
                |cb, view| cb(view, pc, vaddr, n, &data[..n])
            );
            if let Some(paddr) = paddr {
                fire!(
                    &mut self.instr,
                    &mut *cpu,
                    PhysMemAfterWrite,
                    |cb, view| cb(view, pc, paddr, n, &data[..n])
                );
            }
        }
        result
    }
}

/// An access made by an instruction run through [`Hooks::around_access`].
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// The instruction's address.
    pub pc: u64,
    /// The data's virtual address.
    pub vaddr: u64,
    /// Its size in bytes (at most 8).
    pub size: u64,
    /// Whether the instruction reads memory.
    pub reads: bool,
    /// Whether it writes memory.
    pub writes: bool,
    /// What a write is about to store (for an atomic, its operand), little-endian.
    pub source: [u8; 8],
}
