"""Every script in examples/ runs and prints what it promises."""
import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def run_example(name, *args):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested():
    tested = {
        "count_blocks.py",
        "syscall_write.py",
        "record_replay.py",
        "snapshots.py",
        "process_tree.py",
        "strace_program.py",
        "files_opened.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_panda_documentation_example():
    out = run_example("count_blocks.py")
    lines = out.splitlines()
    assert lines[0].startswith("Linux ") and "riscv64" in lines[0]
    blocks = int(re.search(r"total of (\d+) basic blocks", out).group(1))
    assert blocks > 10_000


def test_syscall_observed_from_python(tmp_path):
    out = run_example("syscall_write.py", "marker-from-test-7")
    assert "write(fd=1, b'marker-from-test-7\\n')" in out
    assert "writes with the marker: 1" in out


def test_record_then_two_replays(tmp_path):
    out = run_example("record_replay.py", str(tmp_path / "rec"))
    assert out.startswith("Linux version ")
    first, second = map(int, re.search(r"blocks: (\d+) then (\d+)", out).groups())
    assert first == second > 10_000
    assert "same output: True" in out


def test_snapshots_restore_files_and_monitor_shows_pc():
    out = run_example("snapshots.py")
    assert "changed: after" in out
    assert "restored: before" in out
    assert re.search(r"^pc\s+[0-9a-f]{16}", out, re.M)


def test_process_tree_from_the_kernel():
    out = run_example("process_tree.py")
    lines = out.splitlines()
    assert lines[0] == "0 swapper/0"
    assert lines[1] == "  1 sh"
    # The two sleeps started from the console's shell, children of it.
    assert len(re.findall(r"^    \d+ sleep$", out, re.M)) == 2
    assert re.search(r"^  2 kthreadd$", out, re.M)
    assert re.search(r"^processes that ran: .*\d+ sleep", out, re.M)


def test_strace_of_one_program():
    out = run_example("strace_program.py")
    count = int(re.search(r"^(\d+) system calls of lister:", out, re.M).group(1))
    assert count > 20
    assert "  openat path: '/tmp/lister'" in out
    assert re.search(r"^execve\(|^clone\(", out, re.M)
    assert re.search(r"^wait4\(.*\) = \d+$", out, re.M)
    assert "exit_group" not in out  # it never returns


def test_files_a_program_opened():
    out = run_example("files_opened.py")
    assert "'version' -> fd 3 -> /proc/version" in out
    assert "'sys/kernel/hostname' -> fd 3 -> /proc/sys/kernel/hostname" in out
    # /proc/self is a link: the kernel's path names the process.
    assert re.search(r"^'self/status' -> fd 3 -> /proc/\d+/status$", out, re.M)
