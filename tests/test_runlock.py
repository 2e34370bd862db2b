"""One process at a time in a run folder (minicap.runlock), and the commands that take it."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from minicap.runlock import LOCK_NAME, RunFolderBusy, hold_run_folder

fcntl = pytest.importorskip("fcntl")  # the takeover of a killed holder's lock is the POSIX design

_HOLDER = textwrap.dedent("""
    import sys, time
    from minicap.runlock import hold_run_folder
    with hold_run_folder(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process that holds ``tmp_path / 'run'`` until it is killed."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


def test_a_held_folder_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(RunFolderBusy, match=f"{folder} is in use by process {proc.pid}"):
        with hold_run_folder(folder):
            pass


def test_a_killed_holders_lock_is_taken_over(holder):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).exists()  # left behind, as after any crash
    with hold_run_folder(folder):
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (folder / LOCK_NAME).exists()


def test_release_removes_the_lock_and_a_folder_it_made_if_empty(tmp_path):
    with hold_run_folder(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_NAME).is_file()
    assert not (tmp_path / "new").exists()  # a refused run leaves nothing behind
    with hold_run_folder(tmp_path / "kept"):
        (tmp_path / "kept" / "model.npz").write_bytes(b"x")
    assert os.listdir(tmp_path / "kept") == ["model.npz"]


def test_a_file_in_place_of_the_folder_is_named(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(NotADirectoryError, match="is a file, not a run folder"):
        with hold_run_folder(tmp_path / "f"):
            pass


@pytest.mark.parametrize("command", [
    ["train", "--num-train", "40", "--hidden-dim", "8", "--wordvec-dim", "8", "--epochs", "1", "--out"],
    ["demo", "--quick", "--out"],
    ["evaluate"],
    ["visualize"],
], ids=["train", "demo", "evaluate", "visualize"])
def test_commands_refuse_a_folder_another_process_holds(holder, command, tmp_path):
    """The issue's race, made deterministic: the second process is refused, in one line, and writes nothing."""
    folder, proc = holder
    env = {**os.environ, "MINICAP_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "minicap.cli", *command, str(folder)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"minicap {command[0]}: error: {folder} is in use by process {proc.pid} (a minicap "
                                   "command writing there); wait for it to finish or stop it, or choose another folder")
    assert os.listdir(folder) == [LOCK_NAME]


def test_many_processes_starting_together_get_the_folder_one_at_a_time(tmp_path):
    """Eight processes race for one new folder: each either holds it alone or is refused in one line."""
    script = textwrap.dedent("""
        import os, sys, time
        from minicap.runlock import RunFolderBusy, hold_run_folder
        folder = sys.argv[1]
        try:
            with hold_run_folder(folder):
                marker = os.path.join(folder, "inside")
                fd = os.open(marker, os.O_CREAT | os.O_EXCL)  # fails if another holder is inside now
                os.close(fd)
                time.sleep(0.2)
                os.unlink(marker)
            print("held")
        except RunFolderBusy:
            print("busy")
    """)
    folder = tmp_path / "new" / "run"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    outcomes = sorted(out.strip() for out, _ in results)
    assert "held" in outcomes and set(outcomes) <= {"held", "busy"}


def test_a_lock_file_planted_as_a_link_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).symlink_to(victim)
    with hold_run_folder(folder):
        assert not (folder / LOCK_NAME).is_symlink()
    assert victim.read_text() == "precious"
