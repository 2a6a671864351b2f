"""Every bad input, on every command: exit code 2, `dbps: error:` lines naming the culprit, no traceback, and nothing
on disk changed (every case runs in a world of datasets, runs and files that is snapshotted before and after)."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dbps.cli import main
from dbps.data import make_megapixel_mnist

TINY = ("model.encoder=small_cnn model.dim=16 model.heads=2 model.dim_key=8 model.dim_value=8 model.dim_ffn=32 M=2 "
        "S=3 I=8 train.epochs=1 train.warmup_epochs=0 B=4 B_seq=2 data.num_workers=0 log.progress=false "
        "log.tensorboard=false data.val_fraction=0.25")
TRAIN = f"train --config quickstart data.root={{data}} data.generate=null --out {{out}} {TINY}"
FEATURES = f"train --config quickstart --dataset features data.generate=null --out {{out}} {TINY} " \
           "model.encoder=projector tasks=[] B=1 B_seq=1 S=1"
PHOTOS = f"train --config quickstart --dataset folder data.generate=null data.root={{photos}} --out {{out}} {TINY} " \
         "tasks=[] patches.size=16 data.resize=[32,32] B=2 B_seq=1 S=1"
EXTRACT = "extract-features {slides} --coords {w}/tiles --encoder small_cnn --out {out} --no-progress"

# (id, command line, what the error lines must name). Paths: {w} the world, {data} a Megapixel MNIST dataset,
# {run} a finished run, {out} a folder that must not appear, {photos}, {feats}, {slides}: other datasets.
CASES = [
    # configuration files and overrides
    ("yaml-syntax", "train --config {w}/bad.yaml", ["bad.yaml", "line 3, column 1", "expected ',' or ']'"]),
    ("yaml-empty", "train --config {w}/empty.yaml", ["empty.yaml", "empty, no keys"]),
    ("yaml-binary", "train --config {w}/binary.yaml", ["binary.yaml", "not a text file"]),
    ("yaml-duplicate-key", "train --config {w}/dup.yaml", ["dup.yaml", "line 3, column 1", "duplicate key 'M'"]),
    ("yaml-not-a-mapping", "train --config {w}/list.yaml", ["list.yaml", "expected a mapping"]),
    ("config-missing", "train --config {w}/nope.yaml", ["nope.yaml", "neither a file nor a preset"]),
    ("override-unknown-key", f"{TRAIN} MM=3", ["unknown key 'MM'"]),
    ("override-bad-yaml", f"{TRAIN} M=[1", ["override 'M=[1'", "column 3"]),
    ("override-duplicate-key", f"{TRAIN} 'M={{{{a: 1, a: 2}}}}'", ["override 'M={{a: 1, a: 2}}'", "duplicate key 'a'"]),
    ("override-no-value", f"{TRAIN} M", ["unrecognized arguments: M", "KEY=VALUE"]),
    ("lr-inf", f"{TRAIN} train.lr=inf", ["train.lr", "finite", "inf"]),
    ("lr-nan", f"{TRAIN} train.lr=.nan", ["train.lr", "finite", "nan"]),
    ("lr-zero", f"{TRAIN} lr=0", ["train.lr", "> 0"]),
    ("n-class-zero", f"{TRAIN} n_class=0", ["model.num_classes", "got 0"]),
    ("device-tpu", f"{TRAIN} train.device=tpu", ["train.device", "'tpu'"]),
    ("m-zero", f"{TRAIN} M=0", ["num_salient", "got 0"]),
    ("wrong-type", f"{TRAIN} train.epochs=1.5", ["train.epochs", "expected int", "1.5"]),
    ("negative-weight-decay", f"{TRAIN} wd=-1", ["train.weight_decay", "-1"]),
    ("dropout-above-one", f"{TRAIN} dropout=1.5", ["model.dropout", "1.5"]),
    ("negative-workers", f"{TRAIN} data.num_workers=-1", ["data.num_workers", "-1"]),
    ("negative-heatmaps", f"{TRAIN} log.heatmaps=-1", ["log.heatmaps", "-1"]),
    ("negative-seed", f"{TRAIN} seed=-1", ["train.seed", "-1"]),
    ("micro-batch", f"{TRAIN} B_seq=3", ["train.micro_batch_size", "3"]),
    ("every-problem-at-once", f"{TRAIN} lr=0 wd=-1 seed=-1", ["train.lr", "train.weight_decay", "train.seed"]),
    ("unknown-dataset", f"{TRAIN} data.name=nope", ["data.name", "'nope'"]),
    ("unknown-encoder", f"{TRAIN} model.encoder=nope", ["model.encoder", "'nope'"]),
    ("generate-too-small", f"{TRAIN} data.root={{out}} data.generate.size=10", ["data.generate", "84", "10"]),
    ("generate-over-files", f"{TRAIN} data.root={{w}}/keep data.generate={{{{}}}}", ["data.generate", "notes.txt"]),
    ("reference-key-as-written", f"{TRAIN} sample_style=Weird", ["sample_style (selection.sampling) must be one of"]),
    ("per-task-attention-without-branches", f"{TRAIN} model.aggregator=TransMIL model.attention_per_task=true",
     ["model.attention_per_task", "TransMIL gives 1 token(s) for 2 tasks"]),
    ("aggregator-as-written", f"{TRAIN} attention=XYZ", ["attention (model.aggregator): unknown aggregator 'XYZ'"]),
    # datasets
    ("data-root-is-a-file", f"{TRAIN} data.root={{w}}/notes.txt", ["data.root", "notes.txt", "is a file"]),
    ("data-root-missing", f"{TRAIN} data.root={{w}}/nowhere", ["nowhere/meta.json", "make-data"]),
    ("data-root-named-missing", f"train --config quickstart --out {{out}} {TINY} dataset_path={{w}}/typo",
     ["dataset_path (data.root) {w}/typo: no dataset there", "`dbps make-data megapixel-mnist --out {w}/typo"]),
    ("npy-truncated", f"{TRAIN} data.root={{w}}/mm-truncated", ["mm-truncated/train/index.npy", "truncated"]),
    ("npy-zero-bytes", f"{TRAIN} data.root={{w}}/mm-empty", ["mm-empty/train/values.npy", "not a readable"]),
    ("meta-not-json", f"{TRAIN} data.root={{w}}/mm-meta", ["mm-meta/meta.json", "not valid JSON"]),
    ("arrays-disagree", f"{TRAIN} data.root={{w}}/mm-disagree", ["mm-disagree/train", "disagree"]),
    ("image-zero-bytes-in-a-worker", f"{PHOTOS} data.num_workers=1", ["photos/train/a/", "empty file (0 bytes)"]),
    ("labels-binary", f"{FEATURES} data.root={{feats}} data.labels={{feats}}/binary.csv", ["binary.csv", "not a text"]),
    ("labels-missing", f"{FEATURES} data.root={{feats}} data.labels={{w}}/nope.csv", ["nope.csv", "not found"]),
    ("features-truncated-h5", f"{FEATURES} data.root={{w}}/feats-truncated", ["tumor_001.h5", "not a readable h5"]),
    ("splits-not-a-table", f"{FEATURES} data.root={{feats}} data.splits={{w}}/bad.yaml", ["bad.yaml", "columns"]),
    ("weights-missing", f"{TRAIN} model.weights={{w}}/nope.pt", ["model.weights", "nope.pt", "no such"]),
    ("weights-text", f"{TRAIN} model.weights={{w}}/notes.txt", ["model.weights", "notes.txt", "not a readable"]),
    ("weights-foreign", f"{TRAIN} model.weights={{w}}/foreign-state.pt", ["model.weights", "do not fit"]),
    # run folders
    ("out-is-a-file", f"{TRAIN.replace('{out}', '{w}/notes.txt')}", ["notes.txt", "not a folder"]),
    ("out-under-a-file", f"{TRAIN.replace('{out}', '{w}/notes.txt/run')}", ["notes.txt is a file"]),
    ("out-finished-run", f"{TRAIN.replace('{out}', '{run}')}", ["finished run"]),
    ("out-interrupted-run", f"{TRAIN.replace('{out}', '{w}/interrupted')}", ["interrupted run", "--resume"]),
    ("out-foreign-folder", f"{TRAIN.replace('{out}', '{w}/keep')}", ["not empty"]),
    ("resume-dataset-folder", "train --resume {data}", ["no config.yaml", "not a dbps run folder"]),
    ("resume-a-file", "train --resume {w}/notes.txt", ["notes.txt", "not a dbps run folder"]),
    ("resume-finished", "train --resume {run}", ["finished run", "nothing to resume"]),
    ("resume-and-config", "train --config quickstart --resume {run}", ["train: argument --resume", "not allowed"]),
    ("train-without-source", "train", ["train:", "--config --resume is required"]),
    # checkpoints (eval and predict)
    ("eval-other-model", "eval {run} model.dim=32", ["best.pt", "weights do not fit", "another config"]),
    ("eval-text-checkpoint", "eval {w}/notes.txt", ["notes.txt", "not a readable checkpoint"]),
    ("eval-truncated-checkpoint", "eval {w}/truncated.pt", ["truncated.pt", "not a readable checkpoint"]),
    ("eval-empty-checkpoint", "eval {w}/empty.pt", ["empty.pt", "empty file"]),
    ("eval-foreign-checkpoint", "eval {w}/foreign.pt", ["foreign.pt", "neither a dbps checkpoint"]),
    ("eval-bare-state-dict", "eval {w}/foreign-state.pt", ["foreign-state.pt", "holds no config"]),
    ("eval-missing", "eval {w}/nowhere", ["checkpoint not found", "nowhere"]),
    ("eval-folder-without-best", "eval {w}/interrupted", ["interrupted", "no best.pt"]),
    ("eval-unknown-split", "eval {run} --split train", ["eval: argument --split", "'train'"]),
    ("eval-does-not-generate", "eval {run} data.root={out}", ["no dataset there", "evaluation does not"]),
    ("eval-bad-override", "eval {run} M=[1", ["override 'M=[1'"]),
    ("eval-out-is-a-file", "eval {run} --out {w}/notes.txt", ["--out", "notes.txt", "not a folder"]),
    ("eval-hostile-checkpoint", "eval {w}/hostile.pt", ["hostile.pt: refused: it holds posix.mkdir"]),
    ("predict-hostile-checkpoint", "predict {w}/hostile.pt", ["hostile.pt: refused: it holds posix.mkdir"]),
    ("weights-hostile", f"{TRAIN} model.weights={{w}}/hostile.pt", ["model.weights", "refused: it holds posix.mkdir"]),
    ("predict-count-zero", "predict {run} --count 0", ["predict: argument --count", "≥ 1", "0"]),
    ("predict-count-negative", "predict {run} --count -3", ["argument --count", "-3"]),
    ("predict-unknown-split", "predict {run} --split bogus", ["argument --split", "'bogus'"]),
    ("predict-out-is-a-file", "predict {run} --out {w}/notes.txt --count 1", ["--out", "notes.txt", "not a folder"]),
    ("predict-foreign-checkpoint", "predict {w}/foreign.pt", ["foreign.pt", "neither a dbps checkpoint"]),
    # bench
    ("bench-batch-zero", "bench --config quickstart --batch 0 --out {out}/b.csv", ["bench: argument --batch", "0"]),
    ("bench-steps-zero", "bench --config quickstart --steps 0 --out {out}/b.csv", ["argument --steps", "≥ 1"]),
    ("bench-warmup-negative", "bench --config quickstart --warmup -1 --out {out}/b.csv", ["argument --warmup"]),
    ("bench-size-zero", "bench --config quickstart --sizes 0,5 --out {out}/b.csv", ["argument --sizes", "0"]),
    ("bench-size-text", "bench --config quickstart --sizes abc --out {out}/b.csv", ["argument --sizes", "'abc'"]),
    ("bench-unknown-method", "bench --config quickstart --methods foo --out {out}/b.csv", ["method", "'foo'"]),
    ("bench-out-is-a-folder", "bench --config quickstart --out {w}/keep", ["--out", "keep", "is a folder"]),
    ("bench-bad-override", "bench --config quickstart --out {out}/b.csv lr=nan", ["train.lr", "finite"]),
    # make-data
    ("make-data-unknown", "make-data cifar --out {out}", ["make-data: argument dataset", "'cifar'"]),
    ("make-data-n-train-zero", "make-data megapixel-mnist --out {out} --n-train 0", ["--n-train", "≥ 1"]),
    ("make-data-n-test-negative", "make-data megapixel-mnist --out {out} --n-test -1", ["--n-test", "-1"]),
    ("make-data-noise-negative", "make-data megapixel-mnist --out {out} --noise -1", ["--noise", "≥ 0"]),
    ("make-data-size-too-small", "make-data megapixel-mnist --out {out} --size 10", ["size", "84", "10"]),
    ("make-data-existing", "make-data megapixel-mnist --out {data}", ["already holds a dataset", "--force"]),
    ("make-data-out-is-a-file", "make-data megapixel-mnist --out {w}/notes.txt", ["--out", "not a folder"]),
    ("make-data-over-other-files", "make-data megapixel-mnist --out {w}/keep --force --n-train 2 --n-test 2",
     ["keep", "notes.txt", "not a Megapixel MNIST dataset"]),
    ("make-data-digits-missing", "make-data megapixel-mnist --out {out} --digits {w}/nope.npz",
     ["nope.npz", "no such"]),
    ("make-data-digits-garbage", "make-data megapixel-mnist --out {out} --digits {w}/noise.npz",
     ["noise.npz", "not a readable .npz"]),
    # tile and extract-features
    ("tile-patch-size-zero", "tile {slides} --out {out} --patch-size 0", ["tile: argument --patch-size", "0"]),
    ("tile-magnification-zero", "tile {slides} --out {out} --magnification 0", ["--magnification", "> 0"]),
    ("tile-magnification-nan", "tile {slides} --out {out} --magnification nan", ["--magnification", "finite"]),
    ("tile-min-tissue", "tile {slides} --out {out} --min-tissue 2", ["--min-tissue", "[0, 1]"]),
    ("tile-overlap-negative", "tile {slides} --out {out} --overlap -1", ["--overlap", "-1"]),
    ("tile-thumbnail-text", "tile {slides} --out {out} --thumbnail-size big", ["--thumbnail-size", "'big'"]),
    ("tile-missing-slide", "tile {w}/nope.svs --out {out}", ["nope.svs", "not found"]),
    ("tile-folder-without-slides", "tile {w}/keep --out {out}", ["no slides found", "keep"]),
    ("tile-out-is-a-file", "tile {slides} --out {w}/notes.txt", ["--out", "notes.txt", "not a folder"]),
    ("extract-device", f"{EXTRACT} --device tpu", ["extract-features: argument --device", "'tpu'"]),
    ("extract-batch-zero", f"{EXTRACT} --batch-size 0", ["argument --batch-size", "0"]),
    ("extract-weights-missing", f"{EXTRACT} --weights {{w}}/nope.pt", ["nope.pt", "no such weights file"]),
    ("extract-weights-foreign", f"{EXTRACT} --weights {{w}}/foreign-state.pt", ["foreign-state.pt", "do not fit"]),
    ("extract-weights-and-pretrained", f"{EXTRACT} --weights {{w}}/nope.pt --pretrained", ["not both"]),
    ("extract-unknown-encoder", EXTRACT.replace("small_cnn", "nope"), ["unknown encoder 'nope'"]),
    ("extract-named-without-weights", EXTRACT.replace("small_cnn", "uni_v1"), ["'uni_v1' needs its weights"]),
    ("extract-named-foreign-weights", EXTRACT.replace("small_cnn", "kaiko_vits16") + " --weights {w}/foreign-state.pt",
     ["foreign-state.pt", "do not fit", "kaiko_vits16"]),
    ("extract-coords-missing", EXTRACT.replace("{w}/tiles", "{w}/nowhere"), ["coordinate folder not found"]),
    ("extract-out-is-a-file", EXTRACT.replace("{out}", "{w}/notes.txt"), ["--out", "notes.txt", "not a folder"]),
    # splits and cv
    ("splits-labels-missing", "splits {w}/nope.csv --out {out}", ["nope.csv", "not found"]),
    ("splits-labels-not-a-table", "splits {w}/notes.txt --out {out}", ["notes.txt", "expected columns"]),
    ("splits-one-fold", "splits {w}/notes.txt --folds 1 --out {out}", ["splits: argument --folds", "≥ 2", "got 1"]),
    ("cv-splits-missing", "cv --config quickstart --splits {w}/nowhere --out {out}", ["--splits", "no such"]),
    ("cv-seeds-text", "cv --config quickstart --seeds a,b --out {out}", ["cv: argument --seeds", "'a,b'"]),
    ("cv-resume-not-cv", "cv --resume {w}/keep", ["keep", "no cv.json", "not a dbps cross-validation"]),
    # the command itself
    ("unknown-command", "fit --config quickstart", ["argument COMMAND", "'fit'"]),
    ("unknown-flag", "eval {run} --fast", ["unrecognized arguments: --fast"]),
]


class Payload:
    """Pickles into a call of `os.mkdir(marker)`: what a crafted file would run (here, harmlessly, a folder)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return os.mkdir, (self.marker,)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under `root`: size, modification time and content hash."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        state[str(path.relative_to(root))] = (stat.st_size if path.is_file() else 0, stat.st_mtime_ns, digest)
    return state


def _megapixel_mnist(world: Path) -> Path:
    data = make_megapixel_mnist(world / "mm", n_train=8, n_test=4, size=120, n_noise=2, progress=False)
    for name in ("truncated", "empty", "meta", "disagree"):
        shutil.copytree(data, world / f"mm-{name}")
    index = world / "mm-truncated" / "train" / "index.npy"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    (world / "mm-empty" / "train" / "values.npy").write_bytes(b"")
    (world / "mm-meta" / "meta.json").write_text('{"format": 1')
    np.save(world / "mm-disagree" / "train" / "offsets.npy", np.arange(3))
    return data


def _finished_run(world: Path, data: Path) -> Path:
    """A run folder as training leaves it (config with data.generate set, as the quickstart's), without training."""
    from dbps.config import load_config, save_config
    from dbps.engine.build import Run
    from dbps.engine.checkpoint import save_checkpoint
    from dbps.models.weights import plain_state_dict

    config, _ = load_config("quickstart", [f"data.root={data}", *TINY.split()])
    built = Run.from_config(config, progress=False, generate=False)
    run = world / "run"
    run.mkdir()
    save_config(config, run / "config.yaml")
    for name in ("best.pt", "last.pt"):
        save_checkpoint(run / name, model=plain_state_dict(built.model), config=config.to_dict())
    (run / "summary.json").write_text("{}")
    (world / "truncated.pt").write_bytes((run / "best.pt").read_bytes()[:3000])
    return run


def _photos(world: Path) -> Path:
    """Class folders of small PNGs; both training images of class `a` are empty files."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = world / "photos" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    for i in range(2):
        (world / "photos" / "train" / "a" / f"{i}.png").write_bytes(b"")
    return world / "photos"


def _feature_bags(world: Path) -> Path:
    from dbps.wsi import write_features

    feats = world / "feats"
    labels = {"normal_001": "normal", "tumor_001": "tumor", "test_001": "tumor", "test_002": "normal"}
    for name in labels:
        write_features(feats / "features_x" / f"{name}.h5", np.ones((4, 8), np.float32), np.zeros((4, 2)), encoder="x")
    (feats / "labels.csv").write_text("slide_id,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    (feats / "binary.csv").write_bytes(bytes(range(128, 256)))
    shutil.copytree(feats, world / "feats-truncated")
    bag = world / "feats-truncated" / "features_x" / "tumor_001.h5"
    bag.write_bytes(bag.read_bytes()[:1000])
    return feats


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Datasets, a finished run and bad files; the cases run inside it and must leave it exactly as it was."""
    w = tmp_path_factory.mktemp("world")
    data = _megapixel_mnist(w)
    run = _finished_run(w, data)
    (w / "bad.yaml").write_text("model:\n  dim: [1\n")
    (w / "empty.yaml").write_text("")
    (w / "binary.yaml").write_bytes(bytes(range(128, 256)))
    (w / "dup.yaml").write_text("M: 3\nS: 2\nM: 4\n")
    (w / "list.yaml").write_text("- M\n- S\n")
    (w / "notes.txt").write_text("not a checkpoint, not weights, not a folder\n")
    (w / "empty.pt").write_bytes(b"")
    torch.save({"model": {"layer.weight": torch.zeros(2)}, "note": Payload(w / "payload-ran")}, w / "hostile.pt")
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, w / "foreign.pt")
    torch.save({"layer.weight": torch.zeros(2)}, w / "foreign-state.pt")
    (w / "noise.npz").write_bytes(bytes(range(256)) * 4)
    (w / "keep").mkdir()
    (w / "keep" / "notes.txt").write_text("the user's own file\n")
    (w / "interrupted").mkdir()
    (w / "interrupted" / "config.yaml").write_text("selection: {method: ips}\n")
    (w / "slides").mkdir()
    (w / "slides" / "s1.tiff").write_bytes(b"II*\x00 not really a slide")
    (w / "tiles").mkdir()
    return {"w": w, "data": data, "run": run, "photos": _photos(w), "feats": _feature_bags(w), "slides": w / "slides",
            "out": w / "new"}


def assert_one_line_errors(err: str, expected: list[str]) -> None:
    lines = err.strip().splitlines()
    assert lines, "no error message"
    assert "Traceback" not in err
    assert all(line.startswith("dbps: error: ") for line in lines), err
    missing = [text for text in expected if text not in err]
    assert not missing, f"{missing} not named in:\n{err}"


@pytest.mark.parametrize(("command", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_named_and_changes_nothing(world, command, expected, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world["w"])  # anything written by mistake to the working folder is seen too
    places = {key: str(path) for key, path in world.items()}
    before = snapshot(world["w"])
    code = main(shlex.split(command.format(**places)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_line_errors(err, [text.format(**places) for text in expected])
    assert snapshot(world["w"]) == before


def test_cases_cover_every_command() -> None:
    from dbps.cli import COMMANDS

    assert len(CASES) >= 50 and len({case[0] for case in CASES}) == len(CASES)
    assert set(COMMANDS) <= {shlex.split(command)[0] for _, command, _ in CASES}


def _unwritable(tmp_path: Path, kind: str) -> Path:
    if kind == "sysfs":
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs to stand for an unwritable place")
        return Path("/sys/dbps-bad-input-test")
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "out"


@pytest.mark.parametrize("kind", ["read-only-folder", "sysfs"])
@pytest.mark.parametrize("command", ["make-data megapixel-mnist --n-train 2 --n-test 2 --size 120 --out {out}",
                                     "predict {run} --count 1 --out {out}", "tile {slides} --out {out} --no-progress",
                                     f"{TRAIN}"])
def test_an_unwritable_output_place_is_named(world, tmp_path, kind, command, capsys) -> None:
    out = _unwritable(tmp_path, kind)
    places = {key: str(path) for key, path in world.items()} | {"out": str(out)}
    before = snapshot(world["w"])
    assert main(shlex.split(command.format(**places))) == 2
    assert_one_line_errors(capsys.readouterr().err, [str(out.parent) if kind != "sysfs" else out.name])
    assert not out.exists() and snapshot(world["w"]) == before


def test_make_data_force_that_fails_half_way_leaves_the_dataset_as_it_was(world, tmp_path, monkeypatch, capsys):
    from dbps.data import megapixel_mnist

    data = tmp_path / "mm"
    shutil.copytree(world["data"], data)
    before = snapshot(tmp_path)
    real = megapixel_mnist._generate_split

    def failing(folder: Path, *args, **kwargs) -> None:
        if folder.name == "test":
            raise OSError(28, "No space left on device", str(folder / "index.npy"))
        real(folder, *args, **kwargs)

    monkeypatch.setattr(megapixel_mnist, "_generate_split", failing)
    argv = ["make-data", "megapixel-mnist", "--out", str(data), "--force", "--n-train", "3", "--n-test", "2",
            "--size", "120", "--seed", "5"]
    assert main(argv) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar of the train split
    assert_one_line_errors(last, [f"{data}/test/index.npy: No space left on device"])
    assert snapshot(tmp_path) == before  # the old dataset, and no temporary folder beside it
    monkeypatch.setattr(megapixel_mnist, "_generate_split", real)
    assert main(argv) == 0
    assert json.loads((data / "meta.json").read_text())["n_train"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm"]


def test_odd_but_accepted_values_get_a_note(world) -> None:
    from dbps.config import load_config
    from dbps.engine.build import prepare_data

    config, _ = load_config("quickstart", [f"data.root={world['data']}", "data.generate=null", "M=16", "I=100",
                                          "patches.size=50", "patches.stride=null"])
    _, notes = prepare_data(config, progress=False)
    assert any(note.startswith("M (selection.num_salient) = 16 ≥ the 4 patches") for note in notes), notes
    assert any("every patch is selected" in note for note in notes)
    assert any(note.startswith("I (selection.chunk_size) = 100") for note in notes)


def test_debug_shows_the_traceback(monkeypatch) -> None:
    from dbps.config import ConfigError

    monkeypatch.setenv("DBPS_DEBUG", "1")
    with pytest.raises(ConfigError, match=r"train\.lr"):
        main(["train", "--config", "quickstart", "lr=inf"])


def test_writes_on_a_full_disk_name_the_file_and_leave_the_previous_one(small_disk) -> None:
    """Checkpoints, metrics, reports and pictures on a disk that is really full (a tmpfs filled to the last byte)."""
    import errno

    from dbps.engine.checkpoint import load_checkpoint, save_checkpoint
    from dbps.engine.evaluate import write_confusion
    from dbps.engine.loggers import CSVLogger
    from dbps.files import write_json
    from dbps.viz import save_confusion
    from tests.conftest import fill

    matrix, names = np.array([[3, 1], [0, 4]]), ["a", "b"]
    writers = {
        "last.pt": lambda path, n: save_checkpoint(path, model={"w": torch.arange(float(n))}),
        "summary.json": lambda path, n: write_json(path, {"values": list(range(n))}),
        "metrics.csv": lambda path, n: [CSVLogger(path).log({"epoch": i, "loss": 0.5}) for i in range(n)],
        "confusion.csv": lambda path, n: write_confusion(path, matrix * n, names),
        "confusion.png": lambda path, n: save_confusion(matrix * n, names, "t" * min(n, 50), path),
    }
    for name, write in writers.items():
        write(small_disk / name, 3)
    before = snapshot(small_disk)
    filler = fill(small_disk)
    for name, write in writers.items():
        with pytest.raises(OSError) as failed:
            write(small_disk / name, 200_000)
        assert (failed.value.errno, failed.value.filename) == (errno.ENOSPC, str(small_disk / name)), name
    filler.unlink()
    assert snapshot(small_disk) == before  # the previous files, and no temporary one beside them
    assert torch.equal(load_checkpoint(small_disk / "last.pt")["model"]["w"], torch.arange(3.0))
