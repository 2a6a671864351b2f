"""One command per run folder: a lock held for a process's life, named in a second command's one-line error, never
left stale by a killed process; commands that only read a run folder run beside its training."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dbps.cli import main
from dbps.engine.run_folder import LOCK_FILE, RunFolderInUse, check_not_in_use, locked
from tests.test_bad_input import TINY, assert_one_line_errors, snapshot

RUN_FOLDER = Path(__file__).resolve().parents[2] / "dbps" / "engine" / "run_folder.py"


def hold(folder: Path) -> subprocess.Popen:
    """Another process that holds `folder`'s lock until it is killed (it says `held` once it has it).

    It runs dbps's own run_folder.py, loaded from its file: the module needs only the standard library, and
    importing the dbps package (torch with it) would cost the holder seconds.
    """
    code = textwrap.dedent(f"""
        import importlib.util, time
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("run_folder", {str(RUN_FOLDER)!r})
        run_folder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run_folder)
        with run_folder.locked(Path({str(folder)!r}), "dbps train"):
            print("held", flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds; that process is killed (SIGKILL) at the end."""
    folder = tmp_path / "run"
    process = hold(folder)
    yield folder, process
    process.kill()
    process.wait()


def test_a_held_folder_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(held) -> None:
    folder, process = held
    with pytest.raises(RunFolderInUse) as refused, locked(folder, "dbps train --resume"):
        pytest.fail("two processes held one run folder")
    assert refused.value.filename == str(folder)
    assert f"in use by process {process.pid} (dbps train)" in refused.value.strerror
    with pytest.raises(RunFolderInUse):
        check_not_in_use(folder)
    process.send_signal(signal.SIGKILL)  # no chance to clean up
    process.wait()
    assert (folder / LOCK_FILE).is_file()  # the file stays, but the kernel released the lock with the process
    check_not_in_use(folder)
    with locked(folder, "dbps train --resume"):
        assert (folder / LOCK_FILE).read_text() == f"process {os.getpid()} (dbps train --resume)\n"


def test_a_holder_that_has_not_written_its_name_yet_is_waited_for_not_misnamed(tmp_path) -> None:
    folder = tmp_path / "run"
    with locked(folder, "dbps train"):
        pass
    assert (folder / LOCK_FILE).read_text() == ""  # a holder that ends leaves no name behind
    (folder / LOCK_FILE).write_text("process 999999999 (dbps train)\n")  # as a killed holder leaves it
    fd = os.open(folder / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the new holder has the lock, not yet its name in the file
        name = b"process 1 (dbps train --resume)"  # pid 1 always lives
        writer = threading.Timer(0.3, lambda: (os.ftruncate(fd, 0), os.pwrite(fd, name, 0)))
        writer.start()
        with pytest.raises(RunFolderInUse) as refused, locked(folder, "dbps train --resume"):
            pytest.fail("two holders of one run folder")
        writer.join()
    finally:
        os.close(fd)
    assert "in use by process 1 (dbps train --resume)" in refused.value.strerror


def test_the_lock_is_released_when_the_block_ends_however_it_ends(tmp_path) -> None:
    folder = tmp_path / "run"
    with pytest.raises(KeyError), locked(folder, "dbps train"):
        raise KeyError("a failing run")
    with locked(folder, "dbps eval"):
        pass


def test_a_free_folder_is_probed_without_being_created_or_changed(tmp_path) -> None:
    check_not_in_use(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("x")
    check_not_in_use(tmp_path / "file")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run (trained for one epoch) to evaluate and predict from."""
    from dbps.data import make_megapixel_mnist

    root = tmp_path_factory.mktemp("finished")
    data = make_megapixel_mnist(root / "mm", n_train=8, n_test=4, size=120, n_noise=2, progress=False)
    run = root / "run"
    argv = ["train", "--config", "quickstart", f"data.root={data}", "data.generate=null", "--out", str(run),
            *TINY.split(), "log.heatmaps=0"]
    assert main(argv) == 0
    return run


def test_commands_that_write_into_a_held_run_folder_are_refused_and_change_nothing(finished, capsys) -> None:
    process = hold(finished)
    try:
        before = snapshot(finished)
        for argv in (["train", "--resume", str(finished)], ["eval", str(finished)],
                     ["predict", str(finished), "--count", "1"]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert_one_line_errors(err, [f"{finished}: in use by process {process.pid} (dbps train)"])
            assert ("--out" in err) == (argv[0] != "train")
        assert snapshot(finished) == before
    finally:
        process.kill()
        process.wait()


def test_eval_and_predict_that_only_read_run_beside_training(finished, tmp_path, capsys) -> None:
    process = hold(finished)
    try:
        before = snapshot(finished)
        assert main(["eval", str(finished), "--out", str(tmp_path / "eval")]) == 0
        assert main(["predict", str(finished), "--count", "1", "--out", str(tmp_path / "pred")]) == 0
        assert snapshot(finished) == before
    finally:
        process.kill()
        process.wait()
    assert (tmp_path / "eval" / "eval-test.json").is_file() and (tmp_path / "pred" / "predictions.csv").is_file()
    assert main(["eval", str(finished)]) == 0  # the folder is free again: the reports go beside best.pt
    assert (finished / "eval-test.json").is_file()
    capsys.readouterr()


def test_a_new_run_into_a_folder_being_trained_is_not_called_interrupted(finished, tmp_path, capsys) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "config.yaml").write_text("selection: {method: ips}\n")  # as a run just started leaves it
    process = hold(out)
    try:
        argv = ["train", "--config", "quickstart", f"data.root={finished}", "--out", str(out), *TINY.split()]
        assert main(argv) == 2
        assert_one_line_errors(capsys.readouterr().err, [f"{out}: in use by process {process.pid}"])
    finally:
        process.kill()
        process.wait()
