"""Plugins from Python: load_plugin / unload_plugin / unload_plugins, @panda.ppp, and the
monitor callback (plugin_cmd)."""

import pytest

from conftest import drive
from pandare import _core


def test_unknown_plugins_and_arguments_are_value_errors(panda):
    with pytest.raises(ValueError, match=r'no plugin called "nosuch".*coverage.*stringsearch'):
        panda.load_plugin("nosuch")
    with pytest.raises(ValueError, match='no argument "file".*accepts filename'):
        panda.load_plugin("coverage", {"file": "x.csv"})
    with pytest.raises(ValueError, match="nothing to search for"):
        panda.load_plugin("stringsearch", args={"name": "/nonexistent/x"})
    with pytest.raises(ValueError, match="key=value"):
        panda.load_plugin("coverage", ["filename"])
    with pytest.raises(ValueError, match='no PPP callback "on_match".*on_ssm'):
        panda.ppp("stringsearch", "on_match", autoload=False)(lambda *args: None)
    with pytest.raises(ValueError, match="not loaded"):
        panda.unload_plugin("coverage")
    # autoload without arguments fails for stringsearch; nothing stays registered.
    with pytest.raises(ValueError, match="nothing to search for"):
        panda.ppp("stringsearch", "on_ssm", name="early")(lambda *args: None)
    with pytest.raises(ValueError, match="no PPP callback named 'early'"):
        panda.disable_ppp("early")


def test_plugins_run_with_a_run_and_unload_when_it_ends(panda, tmp_path):
    csv = tmp_path / "cov.csv"
    prefix = tmp_path / "ss"
    panda.load_plugin("coverage", {"filename": str(csv)})
    panda.load_plugin("stringsearch", [f"str=PY42MARK", f"name={prefix}"])
    with pytest.raises(ValueError, match="already loaded"):
        panda.load_plugin("coverage")
    assert _core.loaded_plugins(panda._core) == ["coverage", "stringsearch"]
    matches = []

    @panda.ppp("stringsearch", "on_ssm")
    def on_ssm(cpu, pc, addr, matched, length, is_write, in_memory):
        matches.append((pc, matched, length, is_write, in_memory, cpu.asid()))

    assert drive(panda, lambda p: p.run_serial_cmd("echo PY$((6*7))MARK")) == "PY42MARK"
    assert _core.loaded_plugins(panda._core) == []
    assert matches, "on_ssm never ran"
    assert all(m[1] == b"PY42MARK" and m[2] == 8 and m[4] is False for m in matches)
    assert any(m[3] for m in matches)
    lines = csv.read_text().splitlines()
    assert lines[:2] == ["asid-block", "asid,pc,size,in_kernel"]
    assert len(lines) > 100
    assert '"PY42MARK"' in (tmp_path / "ss_string_matches.txt").read_text()

    # Unloaded with the run: the next run neither collects nor calls on_ssm.
    count = len(matches)
    drive(panda, lambda p: p.run_serial_cmd("echo PY$((6*7))MARK"))
    assert len(matches) == count
    panda.disable_ppp("on_ssm")


def test_unload_plugin_during_a_run_writes_its_file(panda, tmp_path):
    csv = tmp_path / "during.csv"

    def job(p):
        p.load_plugin("coverage", {"filename": str(csv), "privilege": "user"})
        p.run_serial_cmd("ls / > /dev/null")
        p.unload_plugin("coverage")
        written = csv.exists()
        p.run_serial_cmd("true")
        return written

    assert drive(panda, job) is True
    records = csv.read_text().splitlines()[2:]
    assert records and all(line.endswith(",0") for line in records)


def test_unload_plugins_forgets_what_was_asked_for(panda):
    panda.load_plugin("asid_instr_count")
    panda.unload_plugins()
    assert _core.loaded_plugins(panda._core) == []


def test_monitor_callbacks_answer_plugin_cmd(panda):
    @panda.cb_monitor
    def monitor(mon, cmd):
        if cmd.startswith("hello"):
            return "hi from python: " + cmd
        return None

    def job(p):
        return (
            p.run_monitor_cmd("plugin_cmd hello world"),
            p.run_monitor_cmd("plugin_cmd other"),
        )

    handled, ignored = drive(panda, job)
    assert handled == "hi from python: hello world\n"
    assert "no monitor callback handled" in ignored
