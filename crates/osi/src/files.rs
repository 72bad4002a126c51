//! Files: the path of a `struct file` (as `/proc/PID/maps` and `/proc/PID/fd` show it), a
//! task's file descriptors, and its program (`mm->exe_file`).
//!
//! A path is built like the kernel's `d_path`: climb `d_parent` from the file's dentry,
//! collecting `d_name`s, until the root of the dentry's mount; there continue from the
//! mount point in the parent mount (`mnt_mountpoint`, `mnt_parent`), until a mount that is
//! its own parent. Files of pseudo file systems have no path but a name their dentry
//! operations' `d_dname` makes, recognised by its kallsyms name: `pipe:[INODE]`,
//! `socket:[INODE]`, `anon_inode:NAME`, and `/NAME (deleted)` (`simple_dname`, used by
//! memfd and SysV shared memory).

use pandare_core::instrument::GuestCpu;

use crate::kernel::{limits, Kernel, WalkError};

impl Kernel {
    /// The name of the dentry at `dentry` (`d_name`).
    fn dentry_name(&self, cpu: &mut dyn GuestCpu, dentry: u64) -> Result<String, WalkError> {
        let layout = *self.path_layout()?;
        let name = self.read_kernel_pointer(
            cpu,
            dentry.wrapping_add(layout.d_name),
            "dentry.d_name.name",
        )?;
        if name == 0 {
            return Err(WalkError::Inconsistent(format!(
                "dentry {dentry:#x} has no name"
            )));
        }
        let bytes = self.read_c_string(cpu, name, limits::NAME, "dentry name")?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The path of `dentry` in the mount whose `struct vfsmount` is at `vfsmount`, as
    /// `d_path` makes it (from the global root).
    pub fn dentry_path(
        &self,
        cpu: &mut dyn GuestCpu,
        vfsmount: u64,
        dentry: u64,
    ) -> Result<String, WalkError> {
        let layout = *self.path_layout()?;
        if dentry == 0 || vfsmount == 0 {
            return Err(WalkError::Inconsistent(
                "a path with a null dentry or mount".to_string(),
            ));
        }
        let parent_of = |cpu: &mut dyn GuestCpu, dentry: u64| {
            self.read_kernel_pointer(cpu, dentry.wrapping_add(layout.d_parent), "dentry.d_parent")
        };
        let mount_root = |cpu: &mut dyn GuestCpu, vfsmount: u64| {
            self.read_kernel_pointer(
                cpu,
                vfsmount.wrapping_add(layout.mnt_root),
                "vfsmount.mnt_root",
            )
        };
        // A pseudo file system's own naming (pipes, sockets, anonymous inodes).
        let parent = parent_of(cpu, dentry)?;
        let root = mount_root(cpu, vfsmount)?;
        if let Some(name) = self.dynamic_name(cpu, dentry, parent == dentry && dentry == root)? {
            return Ok(name);
        }
        let mut mount = vfsmount.wrapping_sub(layout.mnt);
        let mut dentry = dentry;
        let mut components: Vec<String> = Vec::new();
        for _ in 0..limits::PATH_COMPONENTS {
            let root = mount_root(cpu, mount.wrapping_add(layout.mnt))?;
            let parent = parent_of(cpu, dentry)?;
            if dentry == root || dentry == parent {
                if dentry != root {
                    // Not reachable from its mount's root (a disconnected dentry).
                    break;
                }
                let parent_mount = self.read_kernel_pointer(
                    cpu,
                    mount.wrapping_add(layout.mnt_parent),
                    "mount.mnt_parent",
                )?;
                if parent_mount == mount || parent_mount == 0 {
                    let mut path = String::new();
                    for component in components.iter().rev() {
                        path.push('/');
                        path.push_str(component);
                    }
                    if path.is_empty() {
                        path.push('/');
                    }
                    return Ok(path);
                }
                dentry = self.read_kernel_pointer(
                    cpu,
                    mount.wrapping_add(layout.mnt_mountpoint),
                    "mount.mnt_mountpoint",
                )?;
                mount = parent_mount;
                continue;
            }
            components.push(self.dentry_name(cpu, dentry)?);
            dentry = parent;
        }
        Err(WalkError::TooLong {
            what: "path components",
            limit: limits::PATH_COMPONENTS,
        })
    }

    /// The name `d_dname` gives the dentry, for the pseudo file systems whose `d_dname` is
    /// known; `None` when the dentry has none (`is_mount_root` dentries never use it).
    fn dynamic_name(
        &self,
        cpu: &mut dyn GuestCpu,
        dentry: u64,
        is_mount_root: bool,
    ) -> Result<Option<String>, WalkError> {
        let layout = *self.path_layout()?;
        if is_mount_root {
            return Ok(None);
        }
        let ops = self.read_kernel_pointer(cpu, dentry.wrapping_add(layout.d_op), "dentry.d_op")?;
        if ops == 0 {
            return Ok(None);
        }
        let dname = self.read_pointer(
            cpu,
            ops.wrapping_add(layout.d_dname),
            "dentry_operations.d_dname",
        )?;
        if dname == 0 {
            return Ok(None);
        }
        let symbols = &self.symbols;
        let inode_number = |cpu: &mut dyn GuestCpu| -> Result<u64, WalkError> {
            let inode = self.read_kernel_pointer(
                cpu,
                dentry.wrapping_add(layout.d_inode),
                "dentry.d_inode",
            )?;
            if inode == 0 {
                return Err(WalkError::Inconsistent(format!(
                    "dentry {dentry:#x} of a pipe or socket has no inode"
                )));
            }
            self.read_pointer(cpu, inode.wrapping_add(layout.i_ino), "inode.i_ino")
        };
        let name = if Some(dname) == symbols.pipefs_dname {
            format!("pipe:[{}]", inode_number(cpu)?)
        } else if Some(dname) == symbols.sockfs_dname {
            format!("socket:[{}]", inode_number(cpu)?)
        } else if Some(dname) == symbols.anon_inodefs_dname {
            format!("anon_inode:{}", self.dentry_name(cpu, dentry)?)
        } else if Some(dname) == symbols.simple_dname {
            format!("/{} (deleted)", self.dentry_name(cpu, dentry)?)
        } else {
            // Another pseudo file system (namespaces, dma-buf...): its dentry's own name.
            self.dentry_name(cpu, dentry)?
        };
        Ok(Some(name))
    }

    /// The path of the `struct file` at `file` (its `f_path`).
    pub fn file_path(&self, cpu: &mut dyn GuestCpu, file: u64) -> Result<String, WalkError> {
        let layout = *self.path_layout()?;
        let vfsmount =
            self.read_kernel_pointer(cpu, file.wrapping_add(layout.f_mnt), "file.f_path.mnt")?;
        let dentry = self.read_kernel_pointer(
            cpu,
            file.wrapping_add(layout.f_dentry),
            "file.f_path.dentry",
        )?;
        self.dentry_path(cpu, vfsmount, dentry)
    }

    /// The program `task` runs (`mm->exe_file`); `None` for kernel threads.
    pub fn program_path(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
    ) -> Result<Option<String>, WalkError> {
        let mm = self.task_mm(cpu, task)?;
        if mm == 0 {
            return Ok(None);
        }
        let offset = self.mm_layout()?.exe_file;
        let file = self.read_kernel_pointer(cpu, mm.wrapping_add(offset), "mm_struct.exe_file")?;
        if file == 0 {
            return Ok(None);
        }
        self.file_path(cpu, file).map(Some)
    }

    /// `task`'s file table: the address of its `fd` array and its length (`max_fds`);
    /// `None` when the task has no files (it is exiting).
    fn fd_table(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Option<(u64, u64)>, WalkError> {
        let layout = *self.fd_layout()?;
        let files =
            self.read_kernel_pointer(cpu, task.wrapping_add(layout.files), "task_struct.files")?;
        if files == 0 {
            return Ok(None);
        }
        let table =
            self.read_kernel_pointer(cpu, files.wrapping_add(layout.fdt), "files_struct.fdt")?;
        if table == 0 {
            return Err(WalkError::Inconsistent(format!(
                "files_struct {files:#x} has no fdtable"
            )));
        }
        let count = self.read_uint(
            cpu,
            table.wrapping_add(layout.max_fds),
            4,
            "fdtable.max_fds",
        )?;
        if count > limits::FDS {
            return Err(WalkError::Inconsistent(format!(
                "fdtable {table:#x} claims {count} descriptors (more than Linux allows)"
            )));
        }
        let array = self.read_kernel_pointer(cpu, table.wrapping_add(layout.fd), "fdtable.fd")?;
        if array == 0 {
            return Err(WalkError::Inconsistent(format!(
                "fdtable {table:#x} has no fd array"
            )));
        }
        Ok(Some((array, count)))
    }

    /// The path of `task`'s file descriptor `fd`, `None` when it is not open.
    pub fn fd_path(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
        fd: u32,
    ) -> Result<Option<String>, WalkError> {
        let Some((array, count)) = self.fd_table(cpu, task)? else {
            return Ok(None);
        };
        if u64::from(fd) >= count {
            return Ok(None);
        }
        let size = self.pointer_size as u64;
        let file = self.read_kernel_pointer(
            cpu,
            array.wrapping_add(u64::from(fd) * size),
            "fdtable.fd[]",
        )?;
        if file == 0 {
            return Ok(None);
        }
        self.file_path(cpu, file).map(Some)
    }

    /// `task`'s open file descriptors and their paths, in descriptor order.
    pub fn fds(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<(u32, String)>, WalkError> {
        let Some((array, count)) = self.fd_table(cpu, task)? else {
            return Ok(Vec::new());
        };
        let size = self.pointer_size;
        let mut open = Vec::new();
        let mut chunk = [0u8; 512];
        let per_chunk = (chunk.len() / size) as u64;
        let mut first = 0;
        while first < count {
            let n = per_chunk.min(count - first);
            let bytes = &mut chunk[..n as usize * size];
            self.read(
                cpu,
                array.wrapping_add(first * size as u64),
                bytes,
                "fdtable.fd[]",
            )?;
            let files: Vec<u64> = bytes.chunks(size).map(|word| self.decode(word)).collect();
            for (index, file) in files.into_iter().enumerate() {
                if file == 0 {
                    continue;
                }
                if !cpu.abi().is_kernel_address(file) {
                    return Err(WalkError::Inconsistent(format!(
                        "fd {} of task {task:#x} points at {file:#x}, not a kernel address",
                        first + index as u64
                    )));
                }
                open.push(((first + index as u64) as u32, self.file_path(cpu, file)?));
            }
            first += n;
        }
        Ok(open)
    }
}
