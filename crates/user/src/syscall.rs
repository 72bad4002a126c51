//! The Linux system call layer: a deterministic answer to every call a static glibc or
//! musl program makes on its way through `main`, from one process with one thread. What
//! the layer does not implement stops the run with the call's number and name (see
//! `docs/exec.md` for the list and for which calls answer `-ENOSYS` instead, because the C
//! libraries fall back when they get it).

use std::io::{Read, Write};

use crate::arch::{Prot, Stat, UserCpu, PAGE_SIZE};
use crate::memory::page_ceil;
use crate::process::{Process, UserError};

/// The system calls the layer knows, whatever their number on an architecture.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    Read,
    Write,
    Readv,
    Writev,
    Openat,
    Close,
    Lseek,
    Ioctl,
    Fcntl,
    Fstat,
    Newfstatat,
    Statx,
    Readlinkat,
    Faccessat,
    Exit,
    ExitGroup,
    SetTidAddress,
    SetRobustList,
    Futex,
    Nanosleep,
    ClockNanosleep,
    ClockGettime,
    ClockGetres,
    Gettimeofday,
    SchedYield,
    Kill,
    /// `tkill(tid, signal)`: to the only thread.
    Tkill,
    Tgkill,
    Sigaltstack,
    RtSigaction,
    RtSigprocmask,
    Times,
    Uname,
    Getrlimit,
    Prlimit64,
    Umask,
    Getcwd,
    Prctl,
    /// setuid, setgid (1 id), setreuid, setregid (2), setresuid, setresgid (3).
    SetIds(u8),
    Sendfile,
    /// getresuid, getresgid.
    GetResIds,
    Getgroups,
    Getpid,
    Getppid,
    Getuid,
    Geteuid,
    Getgid,
    Getegid,
    Gettid,
    Brk,
    Munmap,
    Mremap,
    Mmap,
    Mprotect,
    Madvise,
    Getrandom,
    /// Answered -ENOSYS: glibc then runs without restartable sequences.
    Rseq,
    /// Answered -ENOSYS: glibc then uses its baseline string functions.
    RiscvHwprobe,
    /// Nothing to do: translations are coherent with stores.
    RiscvFlushIcache,
    /// `open(path, ...)`: ENOENT, as `openat`.
    Open,
    /// `stat`, `lstat`, `stat64`, `lstat64` on a path: ENOENT.
    Stat,
    /// `readlink(path, buf, size)`: as `readlinkat` from the working directory.
    Readlink,
    /// `access(path, mode)`: ENOENT.
    Access,
    /// i386's `_llseek(fd, high, low, result, whence)`: ESPIPE.
    Llseek,
    /// The `clock_*` calls with a 64-bit `struct timespec` on a 32-bit architecture
    /// (`clock_gettime64`, ...).
    ClockGettime64,
    /// See [`Syscall::ClockGettime64`].
    ClockGetres64,
    /// See [`Syscall::ClockGettime64`].
    ClockNanosleep64,
    /// i386's `mmap2`: the offset in pages.
    Mmap2,
    /// i386's old `mmap(struct mmap_arg_struct *)`: the six arguments in memory.
    OldMmap,
    /// `time(tloc)`: seconds of `CLOCK_REALTIME`.
    Time,
    /// x86_64's `arch_prctl`: the FS and GS bases (TLS).
    ArchPrctl,
    /// x86's `set_thread_area(struct user_desc *)`: a TLS entry in the GDT.
    SetThreadArea,
    /// x86's `get_thread_area(struct user_desc *)`.
    GetThreadArea,
    /// `sysinfo(struct sysinfo *)`: uptime from virtual time, guest memory, one process.
    Sysinfo,
    /// `sched_getaffinity`: one CPU, CPU 0.
    SchedGetaffinity,
    /// `getrusage`: user time from virtual time, nothing else counted.
    Getrusage,
}

/// The asm-generic system call table (riscv64, aarch64, loongarch64): `(number, name,
/// what the layer does)`. Names of calls the layer does not implement are listed too, so
/// that the error naming them is clear.
pub const GENERIC_TABLE: &[(u64, &str, Option<Syscall>)] = &[
    (17, "getcwd", Some(Syscall::Getcwd)),
    (23, "dup", None),
    (24, "dup3", None),
    (25, "fcntl", Some(Syscall::Fcntl)),
    (29, "ioctl", Some(Syscall::Ioctl)),
    (34, "mkdirat", None),
    (35, "unlinkat", None),
    (46, "ftruncate", None),
    (48, "faccessat", Some(Syscall::Faccessat)),
    (49, "chdir", None),
    (56, "openat", Some(Syscall::Openat)),
    (57, "close", Some(Syscall::Close)),
    (59, "pipe2", None),
    (61, "getdents64", None),
    (62, "lseek", Some(Syscall::Lseek)),
    (63, "read", Some(Syscall::Read)),
    (64, "write", Some(Syscall::Write)),
    (65, "readv", Some(Syscall::Readv)),
    (66, "writev", Some(Syscall::Writev)),
    (67, "pread64", None),
    (68, "pwrite64", None),
    (71, "sendfile", Some(Syscall::Sendfile)),
    (72, "pselect6", None),
    (73, "ppoll", None),
    (78, "readlinkat", Some(Syscall::Readlinkat)),
    (79, "newfstatat", Some(Syscall::Newfstatat)),
    (80, "fstat", Some(Syscall::Fstat)),
    (82, "fsync", None),
    (93, "exit", Some(Syscall::Exit)),
    (94, "exit_group", Some(Syscall::ExitGroup)),
    (95, "waitid", None),
    (96, "set_tid_address", Some(Syscall::SetTidAddress)),
    (98, "futex", Some(Syscall::Futex)),
    (99, "set_robust_list", Some(Syscall::SetRobustList)),
    (101, "nanosleep", Some(Syscall::Nanosleep)),
    (113, "clock_gettime", Some(Syscall::ClockGettime)),
    (114, "clock_getres", Some(Syscall::ClockGetres)),
    (115, "clock_nanosleep", Some(Syscall::ClockNanosleep)),
    (123, "sched_getaffinity", Some(Syscall::SchedGetaffinity)),
    (124, "sched_yield", Some(Syscall::SchedYield)),
    (129, "kill", Some(Syscall::Kill)),
    (130, "tkill", Some(Syscall::Tkill)),
    (131, "tgkill", Some(Syscall::Tgkill)),
    (132, "sigaltstack", Some(Syscall::Sigaltstack)),
    (134, "rt_sigaction", Some(Syscall::RtSigaction)),
    (135, "rt_sigprocmask", Some(Syscall::RtSigprocmask)),
    (139, "rt_sigreturn", None),
    (143, "setregid", Some(Syscall::SetIds(2))),
    (144, "setgid", Some(Syscall::SetIds(1))),
    (145, "setreuid", Some(Syscall::SetIds(2))),
    (146, "setuid", Some(Syscall::SetIds(1))),
    (147, "setresuid", Some(Syscall::SetIds(3))),
    (148, "getresuid", Some(Syscall::GetResIds)),
    (149, "setresgid", Some(Syscall::SetIds(3))),
    (150, "getresgid", Some(Syscall::GetResIds)),
    (153, "times", Some(Syscall::Times)),
    (154, "setpgid", None),
    (155, "getpgid", None),
    (157, "setsid", None),
    (158, "getgroups", Some(Syscall::Getgroups)),
    (159, "setgroups", None),
    (160, "uname", Some(Syscall::Uname)),
    (163, "getrlimit", Some(Syscall::Getrlimit)),
    (164, "setrlimit", None),
    (165, "getrusage", Some(Syscall::Getrusage)),
    (166, "umask", Some(Syscall::Umask)),
    (167, "prctl", Some(Syscall::Prctl)),
    (169, "gettimeofday", Some(Syscall::Gettimeofday)),
    (172, "getpid", Some(Syscall::Getpid)),
    (173, "getppid", Some(Syscall::Getppid)),
    (174, "getuid", Some(Syscall::Getuid)),
    (175, "geteuid", Some(Syscall::Geteuid)),
    (176, "getgid", Some(Syscall::Getgid)),
    (177, "getegid", Some(Syscall::Getegid)),
    (178, "gettid", Some(Syscall::Gettid)),
    (179, "sysinfo", Some(Syscall::Sysinfo)),
    (198, "socket", None),
    (203, "connect", None),
    (214, "brk", Some(Syscall::Brk)),
    (215, "munmap", Some(Syscall::Munmap)),
    (216, "mremap", Some(Syscall::Mremap)),
    (220, "clone", None),
    (221, "execve", None),
    (222, "mmap", Some(Syscall::Mmap)),
    (226, "mprotect", Some(Syscall::Mprotect)),
    (233, "madvise", Some(Syscall::Madvise)),
    (260, "wait4", None),
    (261, "prlimit64", Some(Syscall::Prlimit64)),
    (276, "renameat2", None),
    (278, "getrandom", Some(Syscall::Getrandom)),
    (279, "memfd_create", None),
    (291, "statx", Some(Syscall::Statx)),
    (293, "rseq", Some(Syscall::Rseq)),
    (435, "clone3", None),
    (439, "faccessat2", None),
];

/// Linux's error numbers (the same on every supported architecture).
#[allow(missing_docs)]
pub mod errno {
    pub const EPERM: u64 = 1;
    pub const ENOENT: u64 = 2;
    pub const ESRCH: u64 = 3;
    pub const EBADF: u64 = 9;
    pub const EAGAIN: u64 = 11;
    pub const ENOMEM: u64 = 12;
    pub const EFAULT: u64 = 14;
    pub const EEXIST: u64 = 17;
    pub const EINVAL: u64 = 22;
    pub const ENOTTY: u64 = 25;
    pub const ESPIPE: u64 = 29;
    pub const ENOSYS: u64 = 38;
}
use errno::*;

/// What the layer decided about a call.
#[derive(Debug)]
pub enum Action {
    /// Return this value (a negative errno as two's complement) and resume.
    Return(u64),
    /// The process exits with this status.
    Exit(i32),
    /// A signal with the default action "terminate" killed the process.
    Killed(u32),
    /// The run cannot go on.
    Stop(UserError),
}

fn err(code: u64) -> Action {
    Action::Return(code.wrapping_neg())
}

/// Seconds since the epoch at virtual time 0: 2026-01-01T00:00:00Z. The program's clock
/// then advances one nanosecond per virtual time unit (instruction), as a 1 GHz CPU's.
pub const EPOCH_SECONDS: u64 = 1_767_225_600;

/// The fixed identity of the process.
pub const PID: u64 = 1000;
/// Its parent.
pub const PPID: u64 = 999;
/// Its user and group.
pub const UID: u64 = 1000;

const AT_FDCWD: i64 = -100;

/// Handles the system call the CPU stopped on.
pub fn handle<C: UserCpu>(cpu: &mut C, process: &mut Process) -> Action {
    let arch = cpu.arch();
    let (number, a) = cpu.syscall_arguments();
    let Some(call) = arch.syscall(number) else {
        return Action::Stop(UserError::UnimplementedSyscall {
            number,
            name: arch.syscall_name(number),
            pc: cpu.pc(),
        });
    };
    let action = dispatch(cpu, process, call, a);
    if process.trace_syscalls {
        let name = arch.syscall_name(number).unwrap_or("?");
        let shown = match &action {
            Action::Return(value) if (*value as i64) < 0 && (*value as i64) > -4096 => {
                format!("-{}", (*value as i64).unsigned_abs())
            }
            Action::Return(value) => format!("{value:#x}"),
            other => format!("{other:?}"),
        };
        process.trace(format_args!(
            "[{}] {name}({:#x}, {:#x}, {:#x}, {:#x}) = {shown}",
            cpu.instruction_count(),
            a[0],
            a[1],
            a[2],
            a[3]
        ));
    }
    action
}

fn dispatch<C: UserCpu>(cpu: &mut C, p: &mut Process, call: Syscall, a: [u64; 6]) -> Action {
    let arch = cpu.arch();
    match call {
        Syscall::Read => read(cpu, p, a[0], a[1], a[2]),
        Syscall::Write => write(cpu, p, a[0], a[1], a[2]),
        Syscall::Readv | Syscall::Writev => {
            let count = a[2];
            if count > 1024 {
                return err(EINVAL);
            }
            let size = arch.pointer_bytes();
            let Ok(table) = p.read_guest(cpu, a[1], count * size * 2) else {
                return err(EFAULT);
            };
            let mut total = 0u64;
            for index in 0..count as usize {
                let word = |at: usize| {
                    let bytes = &table[at * size as usize..(at + 1) * size as usize];
                    bytes
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &b| acc << 8 | u64::from(b))
                };
                let (base, len) = (word(2 * index), word(2 * index + 1));
                if len == 0 {
                    continue;
                }
                let result = if call == Syscall::Writev {
                    write(cpu, p, a[0], base, len)
                } else {
                    read(cpu, p, a[0], base, len)
                };
                match result {
                    Action::Return(n) if (n as i64) < 0 => {
                        return if total > 0 {
                            Action::Return(total)
                        } else {
                            Action::Return(n)
                        }
                    }
                    Action::Return(n) => {
                        total += n;
                        if n < len {
                            break;
                        }
                    }
                    other => return other,
                }
            }
            Action::Return(total)
        }
        // From stdin to stdout or stderr, through a buffer (the offset must be the
        // stream's own: stdin cannot seek).
        Syscall::Sendfile => {
            let (out, input, offset, count) = (a[0], a[1], a[2], a[3].min(1 << 20));
            if !p.fd_open(input) || !p.fd_open(out) || input != 0 || out == 0 {
                return err(EBADF);
            }
            if offset != 0 {
                return err(ESPIPE);
            }
            let mut data = vec![0u8; count as usize];
            let got = loop {
                match p.io.stdin.read(&mut data) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return err(5), // EIO
                }
            };
            let stream = if out == 1 {
                &mut p.io.stdout
            } else {
                &mut p.io.stderr
            };
            match stream.write_all(&data[..got]).and_then(|()| stream.flush()) {
                Ok(()) => Action::Return(got as u64),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Action::Killed(13),
                Err(_) => err(5),
            }
        }
        // No files: only the standard streams exist.
        Syscall::Openat => {
            if p.read_string(cpu, a[1]).is_err() {
                return err(EFAULT);
            }
            err(ENOENT)
        }
        Syscall::Open | Syscall::Stat | Syscall::Access => {
            if p.read_string(cpu, a[0]).is_err() {
                return err(EFAULT);
            }
            err(ENOENT)
        }
        Syscall::Faccessat => err(ENOENT),
        Syscall::Llseek => fd_or(p, a[0], || err(ESPIPE)),
        Syscall::Close => {
            if p.fd_open(a[0]) {
                p.close(a[0]);
                Action::Return(0)
            } else {
                err(EBADF)
            }
        }
        Syscall::Lseek => fd_or(p, a[0], || err(ESPIPE)),
        // The streams are not terminals (TCGETS, TIOCGWINSZ...): Linux's answer for a
        // pipe or a file.
        Syscall::Ioctl => fd_or(p, a[0], || err(ENOTTY)),
        Syscall::Fcntl => {
            const F_GETFD: u64 = 1;
            const F_SETFD: u64 = 2;
            const F_GETFL: u64 = 3;
            let (fd, command) = (a[0], a[1]);
            fd_or(p, fd, || match command {
                F_GETFD | F_SETFD => Action::Return(0),
                // O_RDONLY for stdin, O_WRONLY for the others.
                F_GETFL => Action::Return(u64::from(fd != 0)),
                _ => err(EINVAL),
            })
        }
        Syscall::Fstat => fstat(cpu, p, a[0], a[1]),
        Syscall::Newfstatat => {
            const AT_EMPTY_PATH: u64 = 0x1000;
            let Ok(path) = p.read_string(cpu, a[1]) else {
                return err(EFAULT);
            };
            if path.is_empty() && a[3] & AT_EMPTY_PATH != 0 {
                fstat(cpu, p, a[0], a[2])
            } else {
                err(ENOENT)
            }
        }
        // glibc falls back to newfstatat.
        Syscall::Statx => err(ENOSYS),
        Syscall::Readlinkat => readlink(cpu, p, a[0], a[1], a[2], a[3]),
        Syscall::Readlink => readlink(cpu, p, AT_FDCWD as u64, a[0], a[1], a[2]),
        Syscall::Exit | Syscall::ExitGroup => Action::Exit(a[0] as i32 & 0xff),
        Syscall::SetTidAddress => {
            p.clear_child_tid = a[0];
            Action::Return(PID)
        }
        Syscall::SetRobustList => {
            p.robust_list = a[0];
            Action::Return(0)
        }
        Syscall::Futex => futex(cpu, p, a),
        Syscall::Nanosleep | Syscall::ClockNanosleep | Syscall::ClockNanosleep64 => {
            // Sleeping lets virtual time pass; nothing else runs meanwhile.
            let at = if call == Syscall::Nanosleep {
                a[0]
            } else {
                a[2]
            };
            let width = time_width(arch, call);
            let Ok(bytes) = p.read_guest(cpu, at, 2 * width) else {
                return err(EFAULT);
            };
            let (seconds, nanos) = (
                le_signed(&bytes[..width as usize]),
                le_signed(&bytes[width as usize..]),
            );
            if seconds < 0 || !(0..1_000_000_000).contains(&nanos) {
                return err(EINVAL);
            }
            let (seconds, nanos) = (seconds as u64, nanos as u64);
            let absolute = call != Syscall::Nanosleep && a[1] & 1 != 0;
            let target = seconds.saturating_mul(1_000_000_000).saturating_add(nanos);
            let now = cpu.now();
            let wake = if absolute {
                let base = if a[0] == 0 {
                    EPOCH_SECONDS * 1_000_000_000
                } else {
                    0
                };
                target.saturating_sub(base)
            } else {
                now.saturating_add(target)
            };
            if wake > now {
                cpu.idle_to(wake);
            }
            Action::Return(0)
        }
        Syscall::ClockGettime | Syscall::ClockGettime64 => {
            let nanos = clock_nanos(cpu.now(), a[0]);
            p.write_time(cpu, a[1], nanos, 1_000_000_000, time_width(arch, call))
        }
        Syscall::ClockGetres | Syscall::ClockGetres64 => {
            if a[1] == 0 {
                return Action::Return(0);
            }
            p.write_time(cpu, a[1], 1, 1_000_000_000, time_width(arch, call))
        }
        Syscall::Gettimeofday => {
            if a[0] == 0 {
                return Action::Return(0);
            }
            let nanos = clock_nanos(cpu.now(), 0);
            p.write_timespec(cpu, a[0], nanos / 1000, 1_000_000)
        }
        Syscall::Time => {
            let seconds = clock_nanos(cpu.now(), 0) / 1_000_000_000;
            let size = arch.pointer_bytes() as usize;
            if a[0] != 0
                && p.write_guest(cpu, a[0], &seconds.to_le_bytes()[..size])
                    .is_err()
            {
                return err(EFAULT);
            }
            Action::Return(seconds)
        }
        Syscall::SchedYield => Action::Return(0),
        Syscall::Kill | Syscall::Tkill | Syscall::Tgkill => {
            let (pid, signal) = if call == Syscall::Tgkill {
                (a[1], a[2])
            } else {
                (a[0], a[1])
            };
            if pid != PID && pid != 0 {
                return err(ESRCH);
            }
            self_signal(p, signal, arch.pointer_bytes() as usize)
        }
        Syscall::Sigaltstack => {
            if a[1] != 0 {
                // ss_sp = 0, ss_flags = SS_DISABLE, ss_size = 0.
                let size = arch.pointer_bytes() as usize;
                let mut bytes = vec![0u8; size * 3];
                bytes[size] = 2;
                if p.write_guest(cpu, a[1], &bytes).is_err() {
                    return err(EFAULT);
                }
            }
            Action::Return(0)
        }
        Syscall::RtSigaction => {
            let (signal, new, old) = (a[0], a[1], a[2]);
            let size = arch.sigaction_bytes();
            if !(1..=64).contains(&signal) || a[3] != 8 {
                return err(EINVAL);
            }
            let previous = p
                .sigactions
                .get(&signal)
                .cloned()
                .unwrap_or_else(|| vec![0; size]);
            if new != 0 {
                if signal == 9 || signal == 19 {
                    return err(EINVAL);
                }
                let Ok(bytes) = p.read_guest(cpu, new, size as u64) else {
                    return err(EFAULT);
                };
                p.sigactions.insert(signal, bytes);
            }
            if old != 0 && p.write_guest(cpu, old, &previous).is_err() {
                return err(EFAULT);
            }
            Action::Return(0)
        }
        Syscall::RtSigprocmask => {
            let (how, new, old) = (a[0], a[1], a[2]);
            if a[3] != 8 {
                return err(EINVAL);
            }
            let previous = p.signal_mask;
            if new != 0 {
                let Ok(bytes) = p.read_guest(cpu, new, 8) else {
                    return err(EFAULT);
                };
                let set = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                p.signal_mask = match how {
                    0 => previous | set,
                    1 => previous & !set,
                    2 => set,
                    _ => return err(EINVAL),
                } & !(1 << 8 | 1 << 18); // SIGKILL and SIGSTOP stay unblocked
            }
            if old != 0 && p.write_guest(cpu, old, &previous.to_le_bytes()).is_err() {
                return err(EFAULT);
            }
            // A pending signal now unblocked is delivered: its default action.
            let deliverable = p.pending_signals & !p.signal_mask;
            if deliverable != 0 {
                let signal = u64::from(deliverable.trailing_zeros()) + 1;
                p.pending_signals &= !(1 << (signal - 1));
                return self_signal(p, signal, arch.pointer_bytes() as usize);
            }
            Action::Return(0)
        }
        Syscall::Times => {
            // Clock ticks (100 Hz) of virtual time: all user time.
            let ticks = cpu.now() / 10_000_000;
            if a[0] != 0 {
                let size = arch.pointer_bytes() as usize;
                let mut bytes = vec![0u8; size * 4];
                bytes[..size].copy_from_slice(&ticks.to_le_bytes()[..size]);
                if p.write_guest(cpu, a[0], &bytes).is_err() {
                    return err(EFAULT);
                }
            }
            Action::Return(ticks)
        }
        Syscall::Uname => {
            let fields = [
                "Linux",
                "pandare",
                "6.12.0-pandare",
                "#1 SMP PREEMPT_DYNAMIC pandare exec",
                arch.uname_machine(),
                "(none)",
            ];
            let mut bytes = vec![0u8; 65 * fields.len()];
            for (index, field) in fields.iter().enumerate() {
                bytes[index * 65..index * 65 + field.len()].copy_from_slice(field.as_bytes());
            }
            match p.write_guest(cpu, a[0], &bytes) {
                Ok(()) => Action::Return(0),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::Getrlimit => rlimit(cpu, p, a[0], a[1], arch.pointer_bytes() as usize),
        Syscall::Prlimit64 => {
            if a[0] != 0 && a[0] != PID {
                return err(ESRCH);
            }
            if a[2] != 0 {
                // Limits are fixed: setting one is refused as for an unprivileged process
                // raising a hard limit.
                return err(EPERM);
            }
            // struct rlimit64: two 64-bit words on every architecture.
            rlimit(cpu, p, a[1], a[3], 8)
        }
        Syscall::Umask => Action::Return(std::mem::replace(&mut p.umask, a[0] & 0o777)),
        Syscall::Prctl => {
            const PR_SET_NAME: u64 = 15;
            const PR_GET_NAME: u64 = 16;
            match a[0] {
                PR_SET_NAME => match p.read_string(cpu, a[1]) {
                    Ok(name) => {
                        p.comm = name.bytes().take(15).collect();
                        Action::Return(0)
                    }
                    Err(_) => err(EFAULT),
                },
                PR_GET_NAME => {
                    let mut bytes = p.comm.clone();
                    bytes.resize(16, 0);
                    match p.write_guest(cpu, a[1], &bytes) {
                        Ok(()) => Action::Return(0),
                        Err(_) => err(EFAULT),
                    }
                }
                _ => err(EINVAL),
            }
        }
        // The process may "change" to the ids it has (-1 leaves one as it is), as an
        // unprivileged process may.
        Syscall::SetIds(count) => {
            if a[..usize::from(count)]
                .iter()
                .all(|&id| id as u32 == UID as u32 || id as u32 == u32::MAX)
            {
                Action::Return(0)
            } else {
                err(EPERM)
            }
        }
        Syscall::GetResIds => {
            for at in &a[..3] {
                if p.write_guest(cpu, *at, &(UID as u32).to_le_bytes())
                    .is_err()
                {
                    return err(EFAULT);
                }
            }
            Action::Return(0)
        }
        // No supplementary groups.
        Syscall::Getgroups => Action::Return(0),
        // No file system: the working directory is the root.
        Syscall::Getcwd => {
            if a[1] < 2 {
                return err(34); // ERANGE
            }
            match p.write_guest(cpu, a[0], b"/\0") {
                Ok(()) => Action::Return(2),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::Getpid | Syscall::Gettid => Action::Return(PID),
        Syscall::Getppid => Action::Return(PPID),
        Syscall::Getuid | Syscall::Geteuid | Syscall::Getgid | Syscall::Getegid => {
            Action::Return(UID)
        }
        Syscall::Brk => brk(cpu, p, a[0]),
        Syscall::Munmap => {
            let (start, len) = (a[0], a[1]);
            if start % PAGE_SIZE != 0 || len == 0 {
                return err(EINVAL);
            }
            let len = page_ceil(len);
            if start.checked_add(len).is_none() {
                return err(EINVAL);
            }
            p.memory.unmap(cpu, start, len);
            Action::Return(0)
        }
        Syscall::Mmap => mmap(cpu, p, a),
        // The offset counts pages; only anonymous mappings exist, whose offset is ignored.
        Syscall::Mmap2 => mmap(cpu, p, a),
        Syscall::OldMmap => {
            let Ok(block) = p.read_guest(cpu, a[0], 24) else {
                return err(EFAULT);
            };
            let mut args = [0u64; 6];
            for (index, word) in block.chunks_exact(4).enumerate() {
                args[index] = u64::from(u32::from_le_bytes(word.try_into().expect("4 bytes")));
            }
            if args[5] % PAGE_SIZE != 0 {
                return err(EINVAL);
            }
            mmap(cpu, p, args)
        }
        Syscall::ArchPrctl => arch_prctl(cpu, p, a[0], a[1]),
        Syscall::SchedGetaffinity => {
            // The mask is a whole number of longs; CPU 0 is the only one.
            let size = arch.pointer_bytes();
            if a[1] < size || !a[1].is_multiple_of(size) {
                return err(EINVAL);
            }
            let mut mask = vec![0u8; size as usize];
            mask[0] = 1;
            match p.write_guest(cpu, a[2], &mask) {
                Ok(()) => Action::Return(size),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::Getrusage => {
            // RUSAGE_SELF (0), RUSAGE_CHILDREN (-1), RUSAGE_THREAD (1): the instructions
            // retired are the process's user time (1 ns each; sleeping is not counted);
            // there are no children.
            let who = a[0] as u32 as i32;
            if !(-1..=1).contains(&who) {
                return err(EINVAL);
            }
            let w = arch.pointer_bytes() as usize;
            let user = if who == -1 {
                0
            } else {
                cpu.instruction_count() / 1000
            };
            let mut bytes = vec![0u8; 16 * w + 2 * w];
            bytes[..w].copy_from_slice(&(user / 1_000_000).to_le_bytes()[..w]);
            bytes[w..2 * w].copy_from_slice(&(user % 1_000_000).to_le_bytes()[..w]);
            match p.write_guest(cpu, a[1], &bytes[..18 * w]) {
                Ok(()) => Action::Return(0),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::Sysinfo => {
            // struct sysinfo: uptime, loads[3], totalram, freeram, sharedram, bufferram,
            // totalswap, freeswap (longs), procs (u16), totalhigh, freehigh (longs),
            // mem_unit (u32), padding to 20 bytes past the longs.
            let w = arch.pointer_bytes() as usize;
            let total = cpu.memory_bytes();
            let used = p.memory.mapped_pages() as u64 * PAGE_SIZE;
            let mut bytes = Vec::new();
            let long = |bytes: &mut Vec<u8>, value: u64| {
                bytes.extend_from_slice(&value.to_le_bytes()[..w]);
            };
            long(&mut bytes, cpu.now() / 1_000_000_000);
            for _ in 0..3 {
                long(&mut bytes, 0);
            }
            for value in [total, total.saturating_sub(used), 0, 0, 0, 0] {
                long(&mut bytes, value);
            }
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.resize(bytes.len().next_multiple_of(w), 0);
            long(&mut bytes, 0);
            long(&mut bytes, 0);
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.resize((bytes.len() + 20 - 2 * w - 4).next_multiple_of(w), 0);
            match p.write_guest(cpu, a[0], &bytes) {
                Ok(()) => Action::Return(0),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::SetThreadArea => {
            let Ok(bytes) = p.read_guest(cpu, a[0], 16) else {
                return err(EFAULT);
            };
            let desc: [u8; 16] = bytes.try_into().expect("16 bytes");
            match cpu.set_thread_area(desc) {
                Ok(entry) => match p.write_guest(cpu, a[0], &entry.to_le_bytes()) {
                    Ok(()) => Action::Return(0),
                    Err(_) => err(EFAULT),
                },
                Err(code) => err(code),
            }
        }
        Syscall::GetThreadArea => {
            let Ok(bytes) = p.read_guest(cpu, a[0], 4) else {
                return err(EFAULT);
            };
            let entry = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
            match cpu.get_thread_area(entry) {
                Ok(desc) => match p.write_guest(cpu, a[0], &desc) {
                    Ok(()) => Action::Return(0),
                    Err(_) => err(EFAULT),
                },
                Err(code) => err(code),
            }
        }
        Syscall::Mremap => mremap(cpu, p, a),
        Syscall::Mprotect => {
            let (start, len) = (a[0], page_ceil(a[1]));
            if start % PAGE_SIZE != 0 || start.checked_add(len).is_none() {
                return err(EINVAL);
            }
            if p.memory.protect(cpu, start, len, Prot(a[2] as u32 & 7)) {
                Action::Return(0)
            } else {
                err(ENOMEM)
            }
        }
        // Advice changes nothing here (MADV_DONTNEED on private anonymous memory would
        // zero it; glibc's malloc only gives such pages back, never rereads them).
        Syscall::Madvise => {
            const MADV_DONTNEED: u64 = 4;
            if a[2] == MADV_DONTNEED {
                let (start, len) = (a[0], page_ceil(a[1]));
                let pages = len / PAGE_SIZE;
                for index in 0..pages {
                    let page = start + index * PAGE_SIZE;
                    if let Some(prot) = p.memory.prot(page) {
                        if p.memory.map(cpu, page, PAGE_SIZE, prot).is_err() {
                            return err(ENOMEM);
                        }
                    }
                }
            }
            Action::Return(0)
        }
        Syscall::Getrandom => {
            let len = a[1].min(1 << 25);
            let bytes = p.random_bytes(len as usize);
            match p.write_guest(cpu, a[0], &bytes) {
                Ok(()) => Action::Return(len),
                Err(_) => err(EFAULT),
            }
        }
        Syscall::Rseq | Syscall::RiscvHwprobe => err(ENOSYS),
        Syscall::RiscvFlushIcache => Action::Return(0),
    }
}

/// Bytes of each field of the `struct timespec` a time call uses: the `*64` calls of
/// 32-bit architectures use 64-bit fields, the others `long`s.
fn time_width(arch: &dyn crate::arch::UserArch, call: Syscall) -> u64 {
    match call {
        Syscall::ClockGettime64 | Syscall::ClockGetres64 | Syscall::ClockNanosleep64 => 8,
        _ => arch.pointer_bytes(),
    }
}

/// A little-endian signed integer of 4 or 8 bytes.
fn le_signed(bytes: &[u8]) -> i64 {
    let value = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    match bytes.len() {
        4 => value as u32 as i32 as i64,
        _ => value as i64,
    }
}

fn readlink<C: UserCpu>(
    cpu: &mut C,
    p: &mut Process,
    dirfd: u64,
    path: u64,
    buffer: u64,
    size: u64,
) -> Action {
    let Ok(path) = p.read_string(cpu, path) else {
        return err(EFAULT);
    };
    if dirfd as i64 as i32 as i64 != AT_FDCWD && !path.starts_with('/') {
        return err(EBADF);
    }
    if path != "/proc/self/exe" {
        return err(ENOENT);
    }
    let target = p.exe_path.clone().into_bytes();
    let len = target.len().min(size as usize);
    if p.write_guest(cpu, buffer, &target[..len]).is_err() {
        return err(EFAULT);
    }
    Action::Return(len as u64)
}

/// x86_64's `arch_prctl`: the FS and GS bases (what glibc and musl point at their thread
/// control block). Other codes (CET, CPUID faulting, AMX) are EINVAL, as on a kernel
/// without those features.
fn arch_prctl<C: UserCpu>(cpu: &mut C, p: &mut Process, code: u64, address: u64) -> Action {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    if !cpu.arch().elf_64() {
        return err(EINVAL);
    }
    match code {
        ARCH_SET_FS | ARCH_SET_GS => match cpu.set_segment_base(code == ARCH_SET_GS, address) {
            Ok(()) => Action::Return(0),
            Err(code) => err(code),
        },
        ARCH_GET_FS | ARCH_GET_GS => match cpu.segment_base(code == ARCH_GET_GS) {
            Ok(base) => match p.write_guest(cpu, address, &base.to_le_bytes()) {
                Ok(()) => Action::Return(0),
                Err(_) => err(EFAULT),
            },
            Err(code) => err(code),
        },
        _ => err(EINVAL),
    }
}

/// Nanoseconds on `clock` at virtual time `now`: CLOCK_REALTIME (0) and its variants from
/// [`EPOCH_SECONDS`], the others from 0.
fn clock_nanos(now: u64, clock: u64) -> u64 {
    const CLOCK_REALTIME: u64 = 0;
    const CLOCK_REALTIME_COARSE: u64 = 5;
    const CLOCK_TAI: u64 = 11;
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_TAI => EPOCH_SECONDS * 1_000_000_000 + now,
        _ => now,
    }
}

fn fd_or(p: &Process, fd: u64, f: impl FnOnce() -> Action) -> Action {
    if p.fd_open(fd) {
        f()
    } else {
        err(EBADF)
    }
}

fn read<C: UserCpu>(cpu: &mut C, p: &mut Process, fd: u64, buffer: u64, len: u64) -> Action {
    if fd != 0 || !p.fd_open(fd) {
        return err(EBADF);
    }
    if len == 0 {
        return Action::Return(0);
    }
    let len = len.min(1 << 20);
    if !p.memory.accessible(buffer, len, true) {
        return err(EFAULT);
    }
    let mut data = vec![0u8; len as usize];
    let got = loop {
        match p.io.stdin.read(&mut data) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return err(5), // EIO
        }
    };
    if p.write_guest(cpu, buffer, &data[..got]).is_err() {
        return err(EFAULT);
    }
    Action::Return(got as u64)
}

fn write<C: UserCpu>(cpu: &mut C, p: &mut Process, fd: u64, buffer: u64, len: u64) -> Action {
    if !(1..=2).contains(&fd) || !p.fd_open(fd) {
        return err(EBADF);
    }
    let len = len.min(1 << 24);
    let Ok(data) = p.read_guest(cpu, buffer, len) else {
        return err(EFAULT);
    };
    let stream = if fd == 1 {
        &mut p.io.stdout
    } else {
        &mut p.io.stderr
    };
    match stream.write_all(&data).and_then(|()| stream.flush()) {
        Ok(()) => Action::Return(len),
        // A closed pipe: Linux sends SIGPIPE, whose default action ends the process.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Action::Killed(13),
        Err(_) => err(5),
    }
}

fn fstat<C: UserCpu>(cpu: &mut C, p: &mut Process, fd: u64, at: u64) -> Action {
    if !p.fd_open(fd) {
        return err(EBADF);
    }
    // The standard streams look like a pseudo-terminal's character device (/dev/pts/0),
    // whatever the host connected them to, so that programs behave the same everywhere.
    let stat = Stat {
        dev: 0x16,
        ino: 3,
        mode: 0o020620,
        nlink: 1,
        uid: UID as u32,
        gid: 5,
        rdev: 0x8800,
        size: 0,
        blksize: 1024,
        blocks: 0,
        time: EPOCH_SECONDS as i64,
    };
    let bytes = cpu.arch().encode_stat(&stat);
    match p.write_guest(cpu, at, &bytes) {
        Ok(()) => Action::Return(0),
        Err(_) => err(EFAULT),
    }
}

fn futex<C: UserCpu>(cpu: &mut C, p: &mut Process, a: [u64; 6]) -> Action {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAKE: u64 = 1;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_WAKE_BITSET: u64 = 10;
    match a[1] & 0x7f {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Action::Return(0),
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let Ok(bytes) = p.read_guest(cpu, a[0], 4) else {
                return err(EFAULT);
            };
            let value = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
            if value != a[2] as u32 {
                return err(EAGAIN);
            }
            if a[3] != 0 {
                // A timed wait in a single thread just times out (ETIMEDOUT).
                return err(110);
            }
            Action::Stop(UserError::Deadlock { pc: cpu.pc() })
        }
        operation => Action::Stop(UserError::Unsupported {
            call: "futex",
            what: format!("operation {operation}"),
        }),
    }
}

fn self_signal(p: &mut Process, signal: u64, pointer_bytes: usize) -> Action {
    if signal == 0 {
        return Action::Return(0);
    }
    if !(1..=64).contains(&signal) {
        return err(EINVAL);
    }
    // Signals are not delivered to handlers: the default action applies. Those whose
    // default is to be ignored are ignored, the rest end the process.
    const IGNORED: [u64; 4] = [17, 23, 28, 18]; // SIGCHLD, SIGURG, SIGWINCH, SIGCONT
    let blocked = p.signal_mask >> (signal - 1) & 1 != 0 && signal != 9;
    if IGNORED.contains(&signal) {
        return Action::Return(0);
    }
    if blocked {
        // Pending until the program unblocks it (musl's abort raises SIGABRT blocked).
        p.pending_signals |= 1 << (signal - 1);
        return Action::Return(0);
    }
    let handler_set = p
        .sigactions
        .get(&signal)
        .is_some_and(|bytes| bytes.iter().take(pointer_bytes).any(|&b| b != 0));
    if handler_set {
        return Action::Stop(UserError::Unsupported {
            call: "kill",
            what: format!("delivering signal {signal} to the program's handler"),
        });
    }
    Action::Killed(signal as u32)
}

fn rlimit<C: UserCpu>(
    cpu: &mut C,
    p: &mut Process,
    resource: u64,
    old: u64,
    size: usize,
) -> Action {
    const RLIMIT_STACK: u64 = 3;
    const RLIMIT_NOFILE: u64 = 7;
    if resource > 15 {
        return err(EINVAL);
    }
    if old == 0 {
        return Action::Return(0);
    }
    let (soft, hard) = match resource {
        RLIMIT_STACK => (crate::memory::STACK_BYTES, u64::MAX),
        RLIMIT_NOFILE => (1024, 4096),
        _ => (u64::MAX, u64::MAX),
    };
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&soft.to_le_bytes()[..size]);
    bytes.extend_from_slice(&hard.to_le_bytes()[..size]);
    match p.write_guest(cpu, old, &bytes) {
        Ok(()) => Action::Return(0),
        Err(_) => err(EFAULT),
    }
}

fn brk<C: UserCpu>(cpu: &mut C, p: &mut Process, requested: u64) -> Action {
    let memory = &mut p.memory;
    if requested < memory.brk_start || requested >= memory.mmap_top {
        return Action::Return(memory.brk);
    }
    let (old_end, new_end) = (page_ceil(memory.brk), page_ceil(requested));
    if new_end > old_end {
        // The heap must not run into a mapping.
        if memory.any_mapped(old_end, new_end - old_end)
            || memory
                .map(cpu, old_end, new_end - old_end, Prot::RW)
                .is_err()
        {
            return Action::Return(memory.brk);
        }
    } else if new_end < old_end {
        memory.unmap(cpu, new_end, old_end - new_end);
    }
    memory.brk = requested;
    Action::Return(requested)
}

fn mmap<C: UserCpu>(cpu: &mut C, p: &mut Process, a: [u64; 6]) -> Action {
    const MAP_SHARED: u64 = 0x1;
    const MAP_PRIVATE: u64 = 0x2;
    const MAP_FIXED: u64 = 0x10;
    const MAP_ANONYMOUS: u64 = 0x20;
    const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
    let (addr, len, prot, flags, fd) = (a[0], a[1], a[2] as u32 & 7, a[3], a[4] as i64);
    if len == 0 || addr % PAGE_SIZE != 0 {
        return err(EINVAL);
    }
    if flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
        return err(EINVAL);
    }
    if flags & MAP_ANONYMOUS == 0 {
        // No files are open, so no descriptor can be mapped.
        let _ = fd;
        return err(EBADF);
    }
    let len = page_ceil(len);
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    let start = if fixed {
        if addr
            .checked_add(len)
            .is_none_or(|end| end > cpu.arch().stack_top())
        {
            return err(ENOMEM);
        }
        if flags & MAP_FIXED_NOREPLACE != 0 && p.memory.any_mapped(addr, len) {
            return err(EEXIST);
        }
        addr
    } else {
        // A hint is taken when the range is free, as Linux does.
        let hint_free = addr != 0
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= p.memory.mmap_top)
            && addr >= page_ceil(p.memory.brk)
            && !p.memory.any_mapped(addr, len);
        if hint_free {
            addr
        } else {
            match p.memory.find_free(len) {
                Some(start) => start,
                None => return err(ENOMEM),
            }
        }
    };
    match p.memory.map(cpu, start, len, Prot(prot)) {
        Ok(()) => Action::Return(start),
        Err(_) => err(ENOMEM),
    }
}

fn mremap<C: UserCpu>(cpu: &mut C, p: &mut Process, a: [u64; 6]) -> Action {
    const MREMAP_MAYMOVE: u64 = 1;
    let (old, old_len, new_len, flags) = (a[0], page_ceil(a[1]), page_ceil(a[2]), a[3]);
    if old % PAGE_SIZE != 0 || new_len == 0 || flags & !MREMAP_MAYMOVE != 0 {
        return err(EINVAL);
    }
    let Some(prot) = p.memory.prot(old) else {
        return err(EFAULT);
    };
    if p.memory
        .range_pages(old, old_len)
        .is_none_or(|pages| pages != old_len / PAGE_SIZE)
    {
        return err(EFAULT);
    }
    if new_len <= old_len {
        p.memory.unmap(cpu, old + new_len, old_len - new_len);
        return Action::Return(old);
    }
    let grow = new_len - old_len;
    if old
        .checked_add(new_len)
        .is_some_and(|end| end <= p.memory.mmap_top)
        && !p.memory.any_mapped(old + old_len, grow)
    {
        return match p.memory.map(cpu, old + old_len, grow, prot) {
            Ok(()) => Action::Return(old),
            Err(_) => err(ENOMEM),
        };
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return err(ENOMEM);
    }
    let Some(start) = p.memory.find_free(new_len) else {
        return err(ENOMEM);
    };
    if p.memory.map(cpu, start, new_len, Prot::RW).is_err() {
        return err(ENOMEM);
    }
    let mut moved = vec![0u8; PAGE_SIZE as usize];
    for offset in (0..old_len).step_by(PAGE_SIZE as usize) {
        let ok = cpu.with_cpu(|view| {
            view.read_memory(old + offset, &mut moved).is_ok()
                && view.write_memory(start + offset, &moved).is_ok()
        });
        if !ok {
            return Action::Stop(UserError::Unsupported {
                call: "mremap",
                what: "moving a mapping the CPU cannot read".to_string(),
            });
        }
    }
    p.memory.protect(cpu, start, new_len, prot);
    p.memory.unmap(cpu, old, old_len);
    Action::Return(start)
}
