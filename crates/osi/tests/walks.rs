//! The walks over synthetic kernel memory: a fake CPU over a sparse byte map and a profile
//! of chosen offsets. The structures are built the way Linux lays them out (circular
//! `list_head`s, a maple tree of height 3 with gaps, mounts, pseudo files), then broken
//! (cycles, garbage and dead nodes, a profile without a field) to check that every walk
//! ends with an error instead of a panic or a hang.

use std::collections::HashMap;
use std::sync::Arc;

use pandare_core::instrument::{GuestCpu, InstrumentError};
use pandare_osi::{Kernel, Mapping, Profile, ProfileError, WalkError};

const PAGE: u64 = 4096;
/// Where the fake kernel's memory starts; virtual = physical + this.
const KERNEL_BASE: u64 = 0xffff_ffd8_0000_0000;
const SATP_MODE_SV48: u64 = 9 << 60;

#[derive(Default)]
struct Memory {
    pages: HashMap<u64, Box<[u8; PAGE as usize]>>,
    next: u64,
}

impl Memory {
    fn new() -> Memory {
        Memory {
            pages: HashMap::new(),
            next: KERNEL_BASE + 0x10_0000,
        }
    }

    /// Allocates `size` zeroed bytes aligned to `align`.
    fn alloc(&mut self, size: u64, align: u64) -> u64 {
        let at = self.next.div_ceil(align) * align;
        self.next = at + size;
        let mut page = at & !(PAGE - 1);
        while page < at + size {
            self.pages
                .entry(page)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            page += PAGE;
        }
        at
    }

    fn write(&mut self, address: u64, bytes: &[u8]) {
        for (index, byte) in bytes.iter().enumerate() {
            let at = address + index as u64;
            let page = self
                .pages
                .get_mut(&(at & !(PAGE - 1)))
                .unwrap_or_else(|| panic!("test writes unmapped {at:#x}"));
            page[(at & (PAGE - 1)) as usize] = *byte;
        }
    }

    fn u64(&mut self, address: u64, value: u64) {
        self.write(address, &value.to_le_bytes());
    }

    fn u32(&mut self, address: u64, value: u32) {
        self.write(address, &value.to_le_bytes());
    }

    fn string(&mut self, text: &str) -> u64 {
        let at = self.alloc(text.len() as u64 + 1, 1);
        self.write(at, text.as_bytes());
        at
    }
}

struct FakeCpu {
    memory: Memory,
    tp: u64,
    satp: u64,
}

impl GuestCpu for FakeCpu {
    fn architecture(&self) -> &'static str {
        "riscv64"
    }
    fn abi(&self) -> &'static dyn pandare_core::GuestAbi {
        &pandare_riscv::ABI
    }
    fn pc(&self) -> u64 {
        0
    }
    fn set_pc(&mut self, _: u64) {}
    fn register(&self, name: &str) -> Result<u64, InstrumentError> {
        match name {
            "tp" => Ok(self.tp),
            "sscratch" => Ok(0),
            "satp" => Ok(self.satp),
            _ => Ok(0),
        }
    }
    fn set_register(&mut self, _: &str, _: u64) -> Result<(), InstrumentError> {
        Ok(())
    }
    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        for (index, byte) in buffer.iter_mut().enumerate() {
            let at = vaddr.wrapping_add(index as u64);
            let page = self
                .memory
                .pages
                .get(&(at & !(PAGE - 1)))
                .ok_or(InstrumentError::Unmapped { address: at })?;
            *byte = page[(at & (PAGE - 1)) as usize];
        }
        Ok(())
    }
    fn write_memory(&mut self, _: u64, _: &[u8]) -> Result<(), InstrumentError> {
        Ok(())
    }
    fn read_physical(&mut self, _: u64, _: &mut [u8]) -> Result<(), InstrumentError> {
        Ok(())
    }
    fn write_physical(&mut self, _: u64, _: &[u8]) -> Result<(), InstrumentError> {
        Ok(())
    }
    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        self.memory
            .pages
            .contains_key(&(vaddr & !(PAGE - 1)))
            .then(|| vaddr - KERNEL_BASE)
    }
    fn asid(&self) -> u64 {
        self.satp
    }
    fn in_kernel_mode(&self) -> bool {
        true
    }
    fn instruction_count(&self) -> u64 {
        0
    }
    fn request_stop(&mut self) {}
}

// The chosen layout (not Linux's; the walks must only use what the profile says).
const TASK_SIZE: u64 = 0x300;
const OFFSETS: &[(&str, &str, u64)] = &[
    ("task_struct", "tasks", 0x10),
    ("task_struct", "pid", 0x40),
    ("task_struct", "tgid", 0x44),
    ("task_struct", "comm", 0x48),
    ("task_struct", "real_parent", 0x60),
    ("task_struct", "group_leader", 0x68),
    ("task_struct", "mm", 0x70),
    ("task_struct", "start_time", 0x78),
    ("task_struct", "signal", 0x80),
    ("task_struct", "thread_node", 0x88),
    ("task_struct", "files", 0x98),
    ("signal_struct", "thread_head", 0x20),
    ("mm_struct", "pgd", 0x8),
    ("mm_struct", "total_vm", 0x10),
    ("mm_struct", "mm_mt", 0x40),
    ("maple_tree", "ma_root", 0x8),
    ("mm_struct", "start_brk", 0x60),
    ("mm_struct", "brk", 0x68),
    ("mm_struct", "start_stack", 0x70),
    ("mm_struct", "exe_file", 0x78),
    ("mm_struct", "context.id", 0x80),
    ("vm_area_struct", "vm_start", 0x0),
    ("vm_area_struct", "vm_end", 0x8),
    ("vm_area_struct", "__vm_flags", 0x20),
    ("vm_area_struct", "vm_pgoff", 0x28),
    ("vm_area_struct", "vm_file", 0x30),
    ("vm_area_struct", "vm_ops", 0x38),
    ("vm_area_struct", "vm_private_data", 0x40),
    ("vm_operations_struct", "name", 0x18),
    ("vm_special_mapping", "name", 0x0),
    ("file", "f_path.mnt", 0x10),
    ("file", "f_path.dentry", 0x18),
    ("dentry", "d_parent", 0x18),
    ("dentry", "d_name.name", 0x28),
    ("dentry", "d_op", 0x50),
    ("dentry", "d_inode", 0x30),
    ("dentry_operations", "d_dname", 0x20),
    ("inode", "i_ino", 0x40),
    ("mount", "mnt", 0x20),
    ("mount", "mnt_parent", 0x10),
    ("mount", "mnt_mountpoint", 0x18),
    ("vfsmount", "mnt_root", 0x0),
    ("files_struct", "fdt", 0x20),
    ("fdtable", "max_fds", 0x0),
    ("fdtable", "fd", 0x8),
    ("module", "list", 0x8),
    ("module", "name", 0x18),
    ("module", "mem", 0x80),
    ("module_memory", "base", 0x0),
    ("module_memory", "size", 0x8),
];

fn offset(structure: &str, field: &str) -> u64 {
    OFFSETS
        .iter()
        .find(|(s, f, _)| *s == structure && *f == field)
        .unwrap()
        .2
}

const SPECIAL_MAPPING_NAME: u64 = 0xffff_ffff_8000_1000;
const PIPEFS_DNAME: u64 = 0xffff_ffff_8000_2000;

fn profile(init_task: u64, modules: u64, without: Option<(&str, &str)>) -> Profile {
    let offsets = OFFSETS
        .iter()
        .filter(|(s, f, _)| without != Some((s, f)))
        .map(|(s, f, o)| ((s.to_string(), f.to_string()), *o))
        .collect();
    let symbols = [
        ("init_task", init_task),
        ("modules", modules),
        ("special_mapping_name", SPECIAL_MAPPING_NAME),
        ("pipefs_dname", PIPEFS_DNAME),
    ]
    .into_iter()
    .map(|(name, address)| (name.to_string(), address))
    .collect();
    let sizes = [("module_memory".to_string(), 0x40)].into_iter().collect();
    Profile::from_parts(symbols, HashMap::new(), offsets, sizes, Vec::new())
}

/// Links the `list_head`s at `nodes` into a circle after `head`.
fn link(memory: &mut Memory, head: u64, nodes: &[u64]) {
    let all: Vec<u64> = std::iter::once(head).chain(nodes.iter().copied()).collect();
    for (index, &node) in all.iter().enumerate() {
        let next = all[(index + 1) % all.len()];
        let prev = all[(index + all.len() - 1) % all.len()];
        memory.u64(node, next);
        memory.u64(node + 8, prev);
    }
}

struct Task {
    address: u64,
    signal: u64,
}

fn task(memory: &mut Memory, pid: u32, tgid: u32, comm: &str, mm: u64, start: u64) -> Task {
    let address = memory.alloc(TASK_SIZE, 64);
    memory.u32(address + offset("task_struct", "pid"), pid);
    memory.u32(address + offset("task_struct", "tgid"), tgid);
    memory.write(address + offset("task_struct", "comm"), comm.as_bytes());
    memory.u64(address + offset("task_struct", "mm"), mm);
    memory.u64(address + offset("task_struct", "start_time"), start);
    memory.u64(address + offset("task_struct", "group_leader"), address);
    let signal = memory.alloc(0x40, 64);
    memory.u64(address + offset("task_struct", "signal"), signal);
    Task { address, signal }
}

/// A maple tree over `ranges` (start, last, entry), gaps filled with null entries; leaves
/// of at most 14 slots and `maple_arange_64` parents of at most 8, so 120 areas make a tree
/// of height 3. Returns the encoded root.
fn maple_tree(memory: &mut Memory, areas: &[(u64, u64, u64)]) -> u64 {
    let mut ranges = Vec::new();
    let mut next = 0u64;
    for &(start, last, entry) in areas {
        if start > next {
            ranges.push((start - 1, 0));
        }
        ranges.push((last, entry));
        next = last + 1;
    }
    ranges.push((u64::MAX, 0));
    // Level 0: leaves. Each item is (max, encoded node).
    let mut level: Vec<(u64, u64)> = ranges
        .chunks(14)
        .map(|chunk| {
            let node = memory.alloc(256, 256);
            for (index, &(pivot, entry)) in chunk.iter().enumerate() {
                memory.u64(node + 8 + 8 * index as u64, pivot);
                memory.u64(node + 128 + 8 * index as u64, entry);
            }
            memory.write(node + 248, &[(chunk.len() - 1) as u8]);
            (chunk.last().unwrap().0, node | 1 << 3 | 4)
        })
        .collect();
    let mut height = 1;
    while level.len() > 1 {
        level = level
            .chunks(8)
            .map(|chunk| {
                let node = memory.alloc(256, 256);
                for (index, &(pivot, child)) in chunk.iter().enumerate() {
                    memory.u64(node + 8 + 8 * index as u64, pivot);
                    memory.u64(node + 80 + 8 * index as u64, child);
                    memory.u64(child & !0xff, node | 2);
                }
                memory.write(node + 240, &[(chunk.len() - 1) as u8]);
                (chunk.last().unwrap().0, node | 3 << 3 | 4)
            })
            .collect();
        height += 1;
    }
    assert_eq!(height, 3, "the test wants a tree with inner nodes");
    level[0].1 | 2
}

struct Guest {
    cpu: FakeCpu,
    kernel: Kernel,
    init: u64,
    shell: Task,
    shell_thread: u64,
    kthread: u64,
    areas: Vec<(u64, u64, u64)>,
    root_node: u64,
}

/// dentry with `name` under `parent` (itself when None).
fn dentry(memory: &mut Memory, name: &str, parent: Option<u64>) -> u64 {
    let at = memory.alloc(0x60, 8);
    let text = memory.string(name);
    memory.u64(at + offset("dentry", "d_name.name"), text);
    memory.u64(at + offset("dentry", "d_parent"), parent.unwrap_or(at));
    at
}

fn file(memory: &mut Memory, mount: u64, dentry: u64) -> u64 {
    let at = memory.alloc(0x40, 8);
    memory.u64(
        at + offset("file", "f_path.mnt"),
        mount + offset("mount", "mnt"),
    );
    memory.u64(at + offset("file", "f_path.dentry"), dentry);
    at
}

fn build(without: Option<(&str, &str)>) -> Guest {
    let mut memory = Memory::new();
    // Mounts: the root file system, and another mounted on /usr.
    let root_mount = memory.alloc(0x40, 8);
    let root = dentry(&mut memory, "/", None);
    memory.u64(root_mount + offset("mount", "mnt_parent"), root_mount);
    memory.u64(root_mount + offset("mount", "mnt_mountpoint"), root);
    memory.u64(
        root_mount + offset("mount", "mnt") + offset("vfsmount", "mnt_root"),
        root,
    );
    let usr = dentry(&mut memory, "usr", Some(root));
    let usr_mount = memory.alloc(0x40, 8);
    let usr_root = dentry(&mut memory, "/", None);
    memory.u64(usr_mount + offset("mount", "mnt_parent"), root_mount);
    memory.u64(usr_mount + offset("mount", "mnt_mountpoint"), usr);
    memory.u64(
        usr_mount + offset("mount", "mnt") + offset("vfsmount", "mnt_root"),
        usr_root,
    );
    let lib = dentry(&mut memory, "lib", Some(usr_root));
    let bin = dentry(&mut memory, "bin", Some(root));
    let busybox = dentry(&mut memory, "busybox", Some(bin));
    let exe = file(&mut memory, root_mount, busybox);
    let dev = dentry(&mut memory, "dev", Some(root));
    let console = dentry(&mut memory, "console", Some(dev));
    let console_file = file(&mut memory, root_mount, console);
    // A pipe: its dentry's d_op->d_dname is pipefs_dname.
    let pipe_mount = memory.alloc(0x40, 8);
    let pipe_root = dentry(&mut memory, "pipe:", None);
    memory.u64(pipe_mount + offset("mount", "mnt_parent"), pipe_mount);
    memory.u64(
        pipe_mount + offset("mount", "mnt") + offset("vfsmount", "mnt_root"),
        pipe_root,
    );
    let pipe = dentry(&mut memory, "", Some(pipe_root));
    let ops = memory.alloc(0x40, 8);
    memory.u64(ops + offset("dentry_operations", "d_dname"), PIPEFS_DNAME);
    memory.u64(pipe + offset("dentry", "d_op"), ops);
    let inode = memory.alloc(0x80, 8);
    memory.u64(inode + offset("inode", "i_ino"), 4242);
    memory.u64(pipe + offset("dentry", "d_inode"), inode);
    let pipe_file = file(&mut memory, pipe_mount, pipe);

    // The shell's address space: 120 areas of libraries in /usr/lib, the program, the
    // vdso, the heap and the stack.
    let mm = memory.alloc(0x100, 64);
    let pgd = memory.alloc(PAGE, PAGE);
    memory.u64(mm + offset("mm_struct", "pgd"), pgd);
    memory.u64(mm + offset("mm_struct", "total_vm"), 777);
    memory.u64(mm + offset("mm_struct", "context.id"), 0x3_0005); // generation 3, ASID 5
    memory.u64(mm + offset("mm_struct", "exe_file"), exe);
    let mut areas = Vec::new();
    let vma = |memory: &mut Memory, start: u64, end: u64, file: u64, pgoff: u64| {
        let at = memory.alloc(0x60, 8);
        memory.u64(at + offset("vm_area_struct", "vm_start"), start);
        memory.u64(at + offset("vm_area_struct", "vm_end"), end);
        memory.u64(at + offset("vm_area_struct", "__vm_flags"), 0x75);
        memory.u64(at + offset("vm_area_struct", "vm_pgoff"), pgoff);
        memory.u64(at + offset("vm_area_struct", "vm_file"), file);
        at
    };
    let program = vma(&mut memory, 0x1_0000, 0x2_0000, exe, 0);
    areas.push((0x1_0000, 0x2_0000 - 1, program));
    let heap = vma(&mut memory, 0x3_0000, 0x5_0000, 0, 0);
    areas.push((0x3_0000, 0x5_0000 - 1, heap));
    memory.u64(mm + offset("mm_struct", "start_brk"), 0x3_0000);
    memory.u64(mm + offset("mm_struct", "brk"), 0x4_8000);
    for index in 0..120u64 {
        let name = format!("lib{index}.so");
        let library = dentry(&mut memory, &name, Some(lib));
        let library = file(&mut memory, usr_mount, library);
        let start = 0x7f00_0000 + index * 0x3000;
        // A gap of one page after each.
        let area = vma(&mut memory, start, start + 0x2000, library, index);
        areas.push((start, start + 0x2000 - 1, area));
    }
    let vdso = vma(&mut memory, 0x7fff_0000, 0x7fff_2000, 0, 0);
    let vm_ops = memory.alloc(0x40, 8);
    memory.u64(
        vm_ops + offset("vm_operations_struct", "name"),
        SPECIAL_MAPPING_NAME,
    );
    memory.u64(vdso + offset("vm_area_struct", "vm_ops"), vm_ops);
    let special = memory.alloc(0x20, 8);
    let vdso_name = memory.string("[vdso]");
    memory.u64(special + offset("vm_special_mapping", "name"), vdso_name);
    memory.u64(vdso + offset("vm_area_struct", "vm_private_data"), special);
    areas.push((0x7fff_0000, 0x7fff_2000 - 1, vdso));
    let stack = vma(&mut memory, 0x7fff_f000_0000, 0x7fff_f002_0000, 0, 0);
    memory.u64(mm + offset("mm_struct", "start_stack"), 0x7fff_f001_fe00);
    areas.push((0x7fff_f000_0000, 0x7fff_f002_0000 - 1, stack));
    let root_node = maple_tree(&mut memory, &areas);
    memory.u64(
        mm + offset("mm_struct", "mm_mt") + offset("maple_tree", "ma_root"),
        root_node,
    );

    // Tasks: init_task (pid 0), kthreadd (pid 2, no mm), the shell (pid 50) with a second
    // thread (tid 51).
    let init = task(&mut memory, 0, 0, "swapper/0", 0, 0);
    let kthread = task(&mut memory, 2, 2, "kthreadd", 0, 1000);
    let shell = task(&mut memory, 50, 50, "sh", mm, 5_000_000);
    let second = task(&mut memory, 51, 50, "sh", mm, 6_000_000);
    memory.u64(
        second.address + offset("task_struct", "group_leader"),
        shell.address,
    );
    memory.u64(
        second.address + offset("task_struct", "signal"),
        shell.signal,
    );
    for (child, parent) in [
        (init.address, init.address),
        (kthread.address, init.address),
        (shell.address, kthread.address),
        (second.address, kthread.address),
    ] {
        memory.u64(child + offset("task_struct", "real_parent"), parent);
    }
    let tasks = offset("task_struct", "tasks");
    link(
        &mut memory,
        init.address + tasks,
        &[kthread.address + tasks, shell.address + tasks],
    );
    let node = offset("task_struct", "thread_node");
    let head = offset("signal_struct", "thread_head");
    for single in [&init, &kthread] {
        link(&mut memory, single.signal + head, &[single.address + node]);
    }
    link(
        &mut memory,
        shell.signal + head,
        &[shell.address + node, second.address + node],
    );
    // The shell's files: 0 and 1 the console, 3 a pipe, 200 the console again.
    let files = memory.alloc(0x40, 8);
    let table = memory.alloc(0x20, 8);
    let array = memory.alloc(256 * 8, 8);
    memory.u64(files + offset("files_struct", "fdt"), table);
    memory.u32(table + offset("fdtable", "max_fds"), 256);
    memory.u64(table + offset("fdtable", "fd"), array);
    for (fd, file) in [
        (0, console_file),
        (1, console_file),
        (3, pipe_file),
        (200, console_file),
    ] {
        memory.u64(array + 8 * fd, file);
    }
    for task in [&shell, &second] {
        memory.u64(task.address + offset("task_struct", "files"), files);
    }
    // One module.
    let modules = memory.alloc(0x10, 8);
    let module = memory.alloc(0x200, 8);
    memory.write(module + offset("module", "name"), b"virtio_blk");
    let mem = module + offset("module", "mem");
    memory.u64(mem, 0xffff_ffff_0100_0000);
    for (index, size) in [0x3000u32, 0x1000, 0x800, 0x100].iter().enumerate() {
        memory.u32(mem + 0x40 * index as u64 + 8, *size);
    }
    link(&mut memory, modules, &[module + offset("module", "list")]);

    let cpu = FakeCpu {
        memory,
        tp: second.address,
        satp: SATP_MODE_SV48 | 5 << 44 | (pgd - KERNEL_BASE) >> 12,
    };
    let kernel = Kernel::new(Arc::new(profile(init.address, modules, without)), &cpu).unwrap();
    Guest {
        cpu,
        kernel,
        init: init.address,
        shell_thread: second.address,
        shell,
        kthread: kthread.address,
        areas,
        root_node,
    }
}

#[test]
fn processes_threads_and_the_current_process() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let cpu = &mut guest.cpu;
    kernel.check().unwrap();
    let processes = kernel.processes(cpu).unwrap();
    let summary: Vec<(u32, u32, &[u8])> = processes
        .iter()
        .map(|process| (process.pid, process.ppid, process.name.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 0, &b"swapper/0"[..]),
            (2, 0, b"kthreadd"),
            (50, 2, b"sh")
        ]
    );
    assert_eq!(processes[0].task, guest.init);
    assert_eq!(processes[1].task, guest.kthread);
    assert_eq!((processes[1].asid, processes[1].pages), (0, 0));
    let shell = &processes[2];
    assert_eq!(shell.pages, 777);
    assert_eq!(shell.create_time, 5_000_000);
    // The current process's asid is what the CPU shows while it runs.
    assert_eq!(shell.asid, cpu.asid());
    assert_eq!(
        kernel.linux().page_table_of_asid(shell.asid),
        shell.page_table
    );

    // The current task is the shell's second thread: the process is its leader.
    assert_eq!(kernel.current_task(cpu).unwrap(), guest.shell_thread);
    let current = kernel.current_process(cpu).unwrap();
    assert_eq!(&current, shell);
    let thread = kernel.current_thread(cpu).unwrap();
    assert_eq!((thread.pid, thread.tid), (50, 51));
    let threads = kernel.threads(cpu, guest.shell.address).unwrap();
    let ids: Vec<(u32, u32)> = threads.iter().map(|t| (t.pid, t.tid)).collect();
    assert_eq!(ids, [(50, 50), (50, 51)]);
    assert_eq!(kernel.threads(cpu, guest.kthread).unwrap().len(), 1);
    assert_eq!(
        kernel.process_of_task(cpu, guest.shell_thread).unwrap(),
        *shell
    );
}

#[test]
fn mappings_come_from_a_maple_tree_of_height_3_with_their_names() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let cpu = &mut guest.cpu;
    let mappings = kernel.mappings(cpu, guest.shell.address).unwrap();
    assert_eq!(mappings.len(), guest.areas.len());
    for (mapping, &(start, last, area)) in mappings.iter().zip(&guest.areas) {
        assert_eq!(
            (mapping.base, mapping.size, mapping.area),
            (start, last + 1 - start, area)
        );
    }
    let name = |mapping: &Mapping| mapping.file.clone().unwrap_or_default();
    assert_eq!(name(&mappings[0]), "/bin/busybox");
    assert_eq!(mappings[0].name.as_deref(), Some("busybox"));
    assert_eq!(name(&mappings[1]), "[heap]");
    assert_eq!(name(&mappings[2]), "/usr/lib/lib0.so");
    assert_eq!(mappings[2].name.as_deref(), Some("lib0.so"));
    assert_eq!(name(&mappings[121]), "/usr/lib/lib119.so");
    assert_eq!(mappings[121].offset, 119 * 4096);
    assert_eq!(mappings[121].flags, 0x75);
    assert_eq!(name(&mappings[122]), "[vdso]");
    assert_eq!(name(&mappings[123]), "[stack]");
    // Kernel threads have none.
    assert!(kernel.mappings(cpu, guest.kthread).unwrap().is_empty());

    // By address: inside an area, in a gap, past everything.
    let found = kernel
        .mapping_by_address(cpu, guest.shell.address, 0x7f00_0000 + 60 * 0x3000 + 0x123)
        .unwrap()
        .unwrap();
    assert_eq!(found.file.as_deref(), Some("/usr/lib/lib60.so"));
    assert_eq!(
        kernel
            .mapping_by_address(cpu, guest.shell.address, 0x7f00_0000 + 60 * 0x3000 + 0x2000)
            .unwrap(),
        None
    );
    assert_eq!(
        kernel
            .mapping_by_address(cpu, guest.shell.address, 0xffff_0000_0000)
            .unwrap(),
        None
    );
    assert_eq!(
        kernel
            .program_path(cpu, guest.shell.address)
            .unwrap()
            .as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(kernel.program_path(cpu, guest.kthread).unwrap(), None);
}

#[test]
fn fds_and_their_paths_including_a_pipe() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let cpu = &mut guest.cpu;
    let fds = kernel.fds(cpu, guest.shell.address).unwrap();
    let expected: Vec<(u32, String)> = [
        (0, "/dev/console"),
        (1, "/dev/console"),
        (3, "pipe:[4242]"),
        (200, "/dev/console"),
    ]
    .into_iter()
    .map(|(fd, path)| (fd, path.to_string()))
    .collect();
    assert_eq!(fds, expected);
    assert_eq!(
        kernel
            .fd_path(cpu, guest.shell.address, 3)
            .unwrap()
            .as_deref(),
        Some("pipe:[4242]")
    );
    assert_eq!(kernel.fd_path(cpu, guest.shell.address, 2).unwrap(), None);
    assert_eq!(
        kernel.fd_path(cpu, guest.shell.address, 9999).unwrap(),
        None
    );
    // No files (kthreadd here): nothing open.
    assert!(kernel.fds(cpu, guest.kthread).unwrap().is_empty());
}

#[test]
fn modules_are_listed_with_their_core_size() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let modules = kernel.modules(&mut guest.cpu).unwrap();
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].name.as_deref(), Some("virtio_blk"));
    assert_eq!(modules[0].base, 0xffff_ffff_0100_0000);
    assert_eq!(modules[0].size, 0x3000 + 0x1000 + 0x800 + 0x100);
}

fn expect_inconsistent<T: std::fmt::Debug>(result: Result<T, WalkError>, words: &str) {
    match result {
        Err(WalkError::Inconsistent(why)) => assert!(why.contains(words), "{why}"),
        other => panic!("expected an inconsistency ({words}), got {other:?}"),
    }
}

#[test]
fn a_task_list_that_loops_without_its_head_is_an_error() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let tasks = offset("task_struct", "tasks");
    // The shell's next points back to kthreadd instead of init_task.
    let (shell, kthread) = (guest.shell.address, guest.kthread);
    guest.cpu.memory.u64(shell + tasks, kthread + tasks);
    expect_inconsistent(kernel.processes(&mut guest.cpu), "loops");
    // A link to nowhere.
    guest.cpu.memory.u64(shell + tasks, 0xffff_ffff_dead_0000);
    assert!(matches!(
        kernel.processes(&mut guest.cpu),
        Err(WalkError::Unmapped { .. })
    ));
    // A user-space address where a kernel pointer must be.
    guest.cpu.memory.u64(shell + tasks, 0x1234);
    expect_inconsistent(kernel.processes(&mut guest.cpu), "not a kernel address");
    // A null link.
    guest.cpu.memory.u64(shell + tasks, 0);
    expect_inconsistent(kernel.processes(&mut guest.cpu), "null link");
}

#[test]
fn broken_maple_trees_are_errors() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let shell = guest.shell.address;
    let root = guest.root_node & !0xff;
    // A dead node: its parent points to itself.
    guest.cpu.memory.u64(root, root | 2);
    expect_inconsistent(kernel.mappings(&mut guest.cpu, shell), "dead");
    guest.cpu.memory.u64(root, 0);
    // A child slot pointing back at its own node: the depth bound ends it.
    let first_child = {
        let mut bytes = [0u8; 8];
        guest.cpu.read_memory(root + 80, &mut bytes).unwrap();
        u64::from_le_bytes(bytes)
    };
    let inner = first_child & !0xff;
    guest.cpu.memory.u64(inner + 80, first_child);
    let result = kernel.mappings(&mut guest.cpu, shell);
    assert!(
        matches!(
            result,
            Err(WalkError::TooLong {
                what: "maple tree levels",
                ..
            })
        ),
        "{result:?}"
    );
    // Garbage: an unknown node type, an unmapped node.
    guest
        .cpu
        .memory
        .u64(inner + 80, (inner + 0x1_0000_0000) | 3 << 3 | 4);
    assert!(matches!(
        kernel.mappings(&mut guest.cpu, shell),
        Err(WalkError::Unmapped { .. })
    ));
    guest.cpu.memory.u64(inner + 80, first_child & !0x78);
    expect_inconsistent(kernel.mappings(&mut guest.cpu, shell), "type 0");
    // Pivots out of order.
    guest.cpu.memory.u64(inner + 80, first_child);
    guest.cpu.memory.u64(root + 8, 5);
    guest.cpu.memory.u64(root + 16, 1);
    expect_inconsistent(kernel.mappings(&mut guest.cpu, shell), "outside");
    // A metadata end beyond the node.
    guest.cpu.memory.write(root + 240, &[40]);
    expect_inconsistent(kernel.mappings(&mut guest.cpu, shell), "slots");
}

#[test]
fn a_dentry_cycle_and_a_garbage_fd_table_are_errors() {
    let mut guest = build(None);
    let kernel = guest.kernel.clone();
    let shell = guest.shell.address;
    // Two dentries that are each other's parent, never reaching a root.
    let memory = &mut guest.cpu.memory;
    let a = dentry(memory, "a", None);
    let b = dentry(memory, "b", Some(a));
    memory.u64(a + offset("dentry", "d_parent"), b);
    let mount = memory.alloc(0x40, 8);
    memory.u64(mount + offset("mount", "mnt_parent"), mount);
    let root = dentry(memory, "/", None);
    memory.u64(
        mount + offset("mount", "mnt") + offset("vfsmount", "mnt_root"),
        root,
    );
    let result = kernel.dentry_path(&mut guest.cpu, mount + offset("mount", "mnt"), a);
    assert!(
        matches!(
            result,
            Err(WalkError::TooLong {
                what: "path components",
                ..
            })
        ),
        "{result:?}"
    );
    // An fd table claiming more descriptors than Linux allows.
    let files = {
        let mut bytes = [0u8; 8];
        guest
            .cpu
            .read_memory(shell + offset("task_struct", "files"), &mut bytes)
            .unwrap();
        u64::from_le_bytes(bytes)
    };
    let mut bytes = [0u8; 8];
    guest
        .cpu
        .read_memory(files + offset("files_struct", "fdt"), &mut bytes)
        .unwrap();
    let table = u64::from_le_bytes(bytes);
    guest.cpu.memory.u32(table, u32::MAX);
    expect_inconsistent(kernel.fds(&mut guest.cpu, shell), "descriptors");
}

#[test]
fn a_profile_without_a_field_gives_an_error_naming_it() {
    let mut guest = build(Some(("vm_area_struct", "vm_pgoff")));
    let kernel = guest.kernel.clone();
    let cpu = &mut guest.cpu;
    // Walks that do not need it work.
    assert_eq!(kernel.processes(cpu).unwrap().len(), 3);
    let error = kernel.mappings(cpu, guest.shell.address).unwrap_err();
    assert!(matches!(
        &error,
        WalkError::Profile(ProfileError::MissingField { structure, field })
            if structure == "vm_area_struct" && field == "vm_pgoff"
    ));
    assert_eq!(
        error.to_string(),
        "the kernel's struct vm_area_struct has no field vm_pgoff"
    );
    assert!(kernel.check().is_err());
    // A field with a fallback name: `vm_flags` is found as `__vm_flags`.
    let mut guest = build(Some(("task_struct", "comm")));
    let error = guest.kernel.processes(&mut guest.cpu).unwrap_err();
    assert!(
        error.to_string().contains("task_struct has no field comm"),
        "{error}"
    );
}
