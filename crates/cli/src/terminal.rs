//! The interactive console: raw terminal mode, QEMU's Ctrl-A keys (x quits, c opens a
//! monitor prompt), and real-time pacing while the guest idles. Pacing only decides when
//! typed bytes and idle skips are handed to the machine (and a recording logs both); the
//! machine itself never reads the host clock.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use pandare::monitor::{Action, Session};
use pandare::ShutdownKind;

const CTRL_A: u8 = 0x01;
/// Longest real-time wait while the guest idles, so typing stays responsive.
const IDLE_WAIT: Duration = Duration::from_millis(20);
const SLICE: u64 = 5_000_000;

/// Restores the terminal mode when dropped.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enable() -> RawMode {
        // SAFETY: tcgetattr writes a termios for fd 0 into our zeroed struct; a failure
        // (stdin is not a terminal) leaves us in cooked mode, which still works.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return RawMode { saved: None };
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restores the attributes read by tcgetattr for the same fd.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

fn show(bytes: &[u8]) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// What typed keys mean right now.
enum Keys {
    /// Bytes go to the guest.
    Guest,
    /// The previous byte was Ctrl-A.
    Escape,
    /// A monitor command line is being typed.
    Monitor(String),
}

/// Runs the guest with the terminal attached until it powers off or the user quits.
pub fn interact(session: &mut Session) -> anyhow::Result<ExitCode> {
    eprintln!("panda: console attached; Ctrl-A x quits, Ctrl-A c opens the monitor, Ctrl-A Ctrl-A sends Ctrl-A\r");
    let _raw = RawMode::enable();
    let (sender, receiver) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 256];
        while let Ok(count) = stdin.read(&mut buffer) {
            if count == 0 || sender.send(buffer[..count].to_vec()).is_err() {
                break;
            }
        }
    });
    session.console.set_echo(Box::new(show));
    let mut keys = Keys::Guest;
    let mut carried = Vec::new();
    loop {
        let mut typed = std::mem::take(&mut carried);
        while let Ok(bytes) = receiver.try_recv() {
            typed.extend(bytes);
        }
        let mut input = Vec::new();
        for byte in typed {
            keys = match (keys, byte) {
                (Keys::Guest, CTRL_A) => Keys::Escape,
                (Keys::Guest, byte) => {
                    input.push(byte);
                    Keys::Guest
                }
                (Keys::Escape, b'x' | b'X') => {
                    eprintln!("\r\npanda: quit\r");
                    return Ok(ExitCode::SUCCESS);
                }
                (Keys::Escape, b'c' | b'C') => {
                    show(b"\r\n(panda) ");
                    Keys::Monitor(String::new())
                }
                (Keys::Escape, CTRL_A) => {
                    input.push(CTRL_A);
                    Keys::Guest
                }
                (Keys::Escape, _) => Keys::Guest,
                (Keys::Monitor(line), b'\r' | b'\n') => {
                    show(b"\r\n");
                    let (text, action) = session.monitor(&line);
                    show(text.replace('\n', "\r\n").as_bytes());
                    if action == Action::Quit {
                        return Ok(ExitCode::SUCCESS);
                    }
                    Keys::Guest
                }
                (Keys::Monitor(mut line), 0x7f | 0x08) => {
                    if line.pop().is_some() {
                        show(b"\x08 \x08");
                    }
                    Keys::Monitor(line)
                }
                (Keys::Monitor(mut line), byte) if byte.is_ascii_graphic() || byte == b' ' => {
                    line.push(char::from(byte));
                    show(&[byte]);
                    Keys::Monitor(line)
                }
                (keys @ Keys::Monitor(_), _) => keys,
            };
        }
        if !input.is_empty() {
            session.console.type_bytes(&input);
        }
        let console = &mut session.console;
        let exit = console.run_slice(SLICE);
        console.discard_output();
        match exit {
            pandare::Exit::BudgetExhausted => {}
            pandare::Exit::Idle => {
                // Wait in real time for at most the virtual gap, then move the clock on by
                // what we waited.
                let mut received = Err(RecvTimeoutError::Timeout);
                let mut wait = |longest: Duration| {
                    let started = Instant::now();
                    received = receiver.recv_timeout(longest);
                    started.elapsed()
                };
                let timer_armed = pandare::driver::idle(
                    console,
                    pandare::driver::Pacing::RealTime {
                        most: IDLE_WAIT,
                        wait: &mut wait,
                    },
                );
                match received {
                    // Handled at the top of the loop, with the Ctrl-A keys.
                    Ok(bytes) => carried = bytes,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        if !timer_armed {
                            anyhow::bail!("the guest is idle forever and the terminal closed");
                        }
                    }
                }
            }
            pandare::Exit::Shutdown(kind) => {
                eprintln!("\r\npanda: guest stopped: {kind:?}\r");
                return Ok(match kind {
                    ShutdownKind::Failure(_) => ExitCode::FAILURE,
                    _ => ExitCode::SUCCESS,
                });
            }
            pandare::Exit::UnhandledTrap { cause, pc, value } => {
                anyhow::bail!(
                    "the guest crashed: unhandled trap, cause {cause:#x} at pc {pc:#x} (value {value:#x})"
                );
            }
        }
    }
}
