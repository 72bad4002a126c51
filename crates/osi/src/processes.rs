//! Tasks: the process list (`init_task.tasks`), threads (`signal->thread_head`), the
//! current process and thread, and loaded kernel modules (`modules`).

use std::collections::HashSet;

use pandare_core::instrument::GuestCpu;

use crate::kernel::{limits, Kernel, Mapping, Process, Thread, WalkError};
use crate::profile::ProfileError;

impl Kernel {
    /// Walks the circular `list_head` at `head` whose entries embed their node at
    /// `node_offset`, calling `visit` with each entry's address (the head itself excluded).
    /// A null or non-kernel link, a cycle that does not come back to the head, or more than
    /// `limit` entries end the walk with an error.
    pub(crate) fn walk_list(
        &self,
        cpu: &mut dyn GuestCpu,
        head: u64,
        node_offset: u64,
        limit: usize,
        what: &'static str,
        mut visit: impl FnMut(&mut dyn GuestCpu, u64) -> Result<(), WalkError>,
    ) -> Result<(), WalkError> {
        let mut seen = HashSet::new();
        let mut node = self.read_kernel_pointer(cpu, head, what)?;
        while node != head {
            if node == 0 {
                return Err(WalkError::Inconsistent(format!(
                    "{what}: a null link in the list at {head:#x}"
                )));
            }
            if !seen.insert(node) {
                return Err(WalkError::Inconsistent(format!(
                    "{what}: the list at {head:#x} loops at {node:#x} without coming back to its head"
                )));
            }
            if seen.len() > limit {
                return Err(WalkError::TooLong { what, limit });
            }
            visit(cpu, node.wrapping_sub(node_offset))?;
            node = self.read_kernel_pointer(cpu, node, what)?;
        }
        Ok(())
    }

    /// The process `task` belongs to: its thread group leader's record.
    pub fn process_of_task(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Process, WalkError> {
        let layout = self.task_layout()?;
        let leader = self.read_kernel_pointer(
            cpu,
            task.wrapping_add(layout.group_leader),
            "task_struct.group_leader",
        )?;
        self.process_record(cpu, if leader == 0 { task } else { leader })
    }

    /// The record of the task at `task` as a process (PANDA's `OsiProc`), without looking
    /// up its group leader.
    pub fn process_record(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Process, WalkError> {
        let layout = *self.task_layout()?;
        let (_, pid) = self.task_ids(cpu, task)?;
        let name = self.task_name(cpu, task)?;
        let parent = self.read_kernel_pointer(
            cpu,
            task.wrapping_add(layout.real_parent),
            "task_struct.real_parent",
        )?;
        let ppid = if parent == 0 {
            0
        } else {
            self.read_uint(
                cpu,
                parent.wrapping_add(layout.tgid),
                4,
                "real_parent->tgid",
            )? as u32
        };
        let create_time = self.read_uint(
            cpu,
            task.wrapping_add(layout.start_time),
            8,
            "task_struct.start_time",
        )?;
        let mm = self.read_kernel_pointer(cpu, task.wrapping_add(layout.mm), "task_struct.mm")?;
        let (asid, page_table, pages) = if mm == 0 {
            (0, 0, 0)
        } else {
            self.address_space(cpu, mm)?
        };
        Ok(Process {
            task,
            asid,
            page_table,
            pid,
            ppid,
            name,
            pages,
            create_time,
        })
    }

    /// An `mm_struct`'s asid (as [`GuestCpu::asid`] shows it while it runs), the physical
    /// address of its top-level page table, and its `total_vm`.
    pub(crate) fn address_space(
        &self,
        cpu: &mut dyn GuestCpu,
        mm: u64,
    ) -> Result<(u64, u64, u64), WalkError> {
        let layout = *self.mm_layout()?;
        let pgd = self.read_kernel_pointer(cpu, mm.wrapping_add(layout.pgd), "mm_struct.pgd")?;
        let page_table = cpu.virt_to_phys(pgd).ok_or(WalkError::Unmapped {
            address: pgd,
            what: "mm_struct.pgd (the page table)",
        })?;
        let context = match &self.layouts.mm_context {
            None => 0,
            Some(Ok(offset)) => {
                self.read_pointer(cpu, mm.wrapping_add(*offset), "mm_struct.context")?
            }
            Some(Err(missing)) => return Err(WalkError::from(missing)),
        };
        let asid = self.linux().asid_of_address_space(cpu, page_table, context);
        let pages =
            self.read_pointer(cpu, mm.wrapping_add(layout.total_vm), "mm_struct.total_vm")?;
        Ok((asid, page_table, pages))
    }

    /// The running process (the current task's thread group leader).
    pub fn current_process(&self, cpu: &mut dyn GuestCpu) -> Result<Process, WalkError> {
        let task = self.current_task(cpu)?;
        self.process_of_task(cpu, task)
    }

    /// The running thread.
    pub fn current_thread(&self, cpu: &mut dyn GuestCpu) -> Result<Thread, WalkError> {
        let task = self.current_task(cpu)?;
        self.thread_record(cpu, task)
    }

    /// The record of the task at `task` as a thread.
    pub fn thread_record(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Thread, WalkError> {
        let (tid, pid) = self.task_ids(cpu, task)?;
        Ok(Thread { pid, tid, task })
    }

    /// The addresses of every process's `task_struct` (thread group leaders), from
    /// `init_task` (pid 0, the idle task) on, in the kernel's list order (creation order).
    pub fn process_tasks(&self, cpu: &mut dyn GuestCpu) -> Result<Vec<u64>, WalkError> {
        let init = self.init_task()?;
        let tasks = self.task_layout()?.tasks;
        let mut list = vec![init];
        self.walk_list(
            cpu,
            init.wrapping_add(tasks),
            tasks,
            limits::TASKS,
            "task_struct.tasks",
            |_, task| {
                list.push(task);
                Ok(())
            },
        )?;
        Ok(list)
    }

    /// Every process, `init_task` (pid 0) first, like PANDA's `get_processes`.
    pub fn processes(&self, cpu: &mut dyn GuestCpu) -> Result<Vec<Process>, WalkError> {
        let tasks = self.process_tasks(cpu)?;
        tasks
            .into_iter()
            .map(|task| self.process_record(cpu, task))
            .collect()
    }

    /// The threads of the process whose task (any of its threads) is `process_task`, in
    /// the kernel's order (the leader first).
    pub fn threads(
        &self,
        cpu: &mut dyn GuestCpu,
        process_task: u64,
    ) -> Result<Vec<Thread>, WalkError> {
        let layout = *self.task_layout()?;
        let signal = self.read_kernel_pointer(
            cpu,
            process_task.wrapping_add(layout.signal),
            "task_struct.signal",
        )?;
        if signal == 0 {
            return Err(WalkError::Inconsistent(format!(
                "task {process_task:#x} has no signal_struct (it is exiting)"
            )));
        }
        let mut threads = Vec::new();
        self.walk_list(
            cpu,
            signal.wrapping_add(layout.thread_head),
            layout.thread_node,
            limits::TASKS,
            "signal_struct.thread_head",
            |cpu, task| {
                threads.push(self.thread_record(cpu, task)?);
                Ok(())
            },
        )?;
        Ok(threads)
    }

    /// The loaded kernel modules, as mappings: `area` is the `struct module`, `base` and
    /// `size` its core memory (6.4+: `mem[MOD_TEXT]` with the sizes of the text, data,
    /// read-only and read-only-after-init parts summed, as `/proc/modules` counts them;
    /// before: `core_layout`), `file` and `name` its name.
    pub fn modules(&self, cpu: &mut dyn GuestCpu) -> Result<Vec<Mapping>, WalkError> {
        let head = self.symbols.modules.ok_or_else(|| {
            WalkError::Profile(ProfileError::MissingType(
                "kernel symbol modules (kallsyms)".to_string(),
            ))
        })?;
        // (list, name, first region, its base and size offsets, region stride, regions)
        let (list, name, region, base, size, stride, count) =
            match (&self.layouts.module, &self.layouts.old_module) {
                (Ok(new), _) => {
                    let stride = self.profile().size_of("module_memory").unwrap_or(0);
                    // MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT: the core regions.
                    let count = if stride == 0 { 1 } else { 4 };
                    (
                        new.list, new.name, new.mem, new.base, new.size, stride, count,
                    )
                }
                (Err(_), Ok(old)) => (
                    old.list,
                    old.name,
                    old.core_layout,
                    old.base,
                    old.size,
                    0,
                    1,
                ),
                (Err(missing), Err(_)) => return Err(WalkError::from(missing)),
            };
        let mut modules = Vec::new();
        self.walk_list(
            cpu,
            head,
            list,
            limits::MODULES,
            "module.list",
            |cpu, module| {
                let text = self.read_c_string(cpu, module.wrapping_add(name), 56, "module.name")?;
                let text = String::from_utf8_lossy(&text).into_owned();
                let first = module.wrapping_add(region);
                let start = self.read_pointer(cpu, first.wrapping_add(base), "module base")?;
                let mut total = 0;
                for index in 0..count {
                    let part = first.wrapping_add(index * stride);
                    total += self.read_uint(cpu, part.wrapping_add(size), 4, "module size")?;
                }
                modules.push(Mapping {
                    area: module,
                    base: start,
                    size: total,
                    file: Some(text.clone()),
                    name: Some(text),
                    offset: 0,
                    flags: 0,
                });
                Ok(())
            },
        )?;
        Ok(modules)
    }
}
