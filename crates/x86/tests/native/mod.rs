//! Running a test program natively on the host, for the host-CPU differential tests
//! (`host_differential.rs`, `host_float.rs`): a forked child maps the code, data and state
//! pages at fixed addresses, loads the input state, calls the code and hands back the state
//! page and the data through a shared mapping; a signal that kills it is the outcome.

/// Where the program's code is mapped (one page, read/write/execute).
pub const CODE: u64 = 0x1000_0000;
/// Where its data is mapped.
pub const DATA: u64 = 0x1001_0000;
/// Size of the data.
pub const DATA_LEN: usize = 0x2000;
/// The state page: GPRs at 0..128, RFLAGS at 128, the rest for the program's own use.
pub const STATE: u64 = 0x1002_0000;
/// Top of the program's scratch stack (the end of the state page).
pub const SCRATCH_TOP: u64 = STATE + 0x1000;

/// What the program left after it returned.
pub struct NativeRun {
    /// The state page: the GPRs and RFLAGS the epilogue stored, and what else it wrote.
    pub state: Vec<u8>,
    /// The data.
    pub data: Vec<u8>,
}

impl NativeRun {
    /// GPR `n` (or RFLAGS for 16) as the epilogue stored it.
    pub fn word(&self, n: usize) -> u64 {
        u64::from_le_bytes(self.state[n * 8..n * 8 + 8].try_into().unwrap())
    }

    /// The 16 GPRs.
    pub fn gpr(&self) -> [u64; 16] {
        std::array::from_fn(|n| self.word(n))
    }
}

/// Runs `program` (position-dependent, at [`CODE`]) in a forked child with `data` at
/// [`DATA`], `gpr` and `flags` in the state page and `extra` bytes written at their offsets
/// in it; `Err(signal)` when a signal killed the child.
pub fn run(
    program: &[u8],
    data: &[u8],
    gpr: &[u64; 16],
    flags: u64,
    extra: &[(u64, &[u8])],
) -> Result<NativeRun, i32> {
    assert_eq!(data.len(), DATA_LEN);
    // SAFETY: anonymous shared mapping, checked for failure, unmapped below.
    let shared = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            0x4000,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(shared, libc::MAP_FAILED);
    // SAFETY: fork; the child only maps memory, copies bytes, calls the test code and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: child process; fixed mappings at addresses checked free (NOREPLACE).
        unsafe {
            let flags_map = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
            let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            if libc::mmap(CODE as *mut _, 0x1000, rwx, flags_map, -1, 0) as u64 != CODE
                || libc::mmap(DATA as *mut _, DATA_LEN, rw, flags_map, -1, 0) as u64 != DATA
                || libc::mmap(STATE as *mut _, 0x1000, rw, flags_map, -1, 0) as u64 != STATE
            {
                libc::_exit(99);
            }
            std::ptr::copy_nonoverlapping(program.as_ptr(), CODE as *mut u8, program.len());
            std::ptr::copy_nonoverlapping(data.as_ptr(), DATA as *mut u8, DATA_LEN);
            let state = STATE as *mut u64;
            for (n, v) in gpr.iter().enumerate() {
                *state.add(n) = *v;
            }
            *state.add(16) = flags;
            for (offset, bytes) in extra {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    (STATE + offset) as *mut u8,
                    bytes.len(),
                );
            }
            let f: extern "C" fn() = std::mem::transmute(CODE as usize);
            f();
            std::ptr::copy_nonoverlapping(STATE as *const u8, shared as *mut u8, 0x1000);
            std::ptr::copy_nonoverlapping(
                DATA as *const u8,
                (shared as *mut u8).add(0x1000),
                DATA_LEN,
            );
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let result = if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the child could not map its fixed addresses"
        );
        // SAFETY: the shared mapping is 0x4000 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(shared as *const u8, 0x1000 + DATA_LEN) };
        Ok(NativeRun {
            state: bytes[..0x1000].to_vec(),
            data: bytes[0x1000..].to_vec(),
        })
    };
    // SAFETY: unmapping what we mapped.
    unsafe { libc::munmap(shared, 0x4000) };
    result
}
