"""Configuration: presets, reference keys, overrides, and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from dbps.config import ConfigError, config_from_dict, load_config, preset_names, save_config
from dbps.selection import Method, PatchSelector, Sampling
from tests import reference_configs as ref

# Flat configs in the reference repos' style (values as their files have them).
REFERENCE_DBFORMER_PLUS = """
n_epoch: 100
n_epoch_warmup: 10
B: 128
B_seq: 32
lr: 1e-4
wd: 0.1
seed: 0
dataset_path: /data/cqu_bpdd
n_class: 7
n_worker: 8
pin_memory: True
eager: True
patch_size: [200, 200]
patch_stride: [200, 200]
N: 30
enc_type: resnet18
pretrained: False
n_chan_in: 3
shuffle: True
shuffle_style: batch
M: 2
I: 10
S: 8
ratio: 0.3
sample_style: Half
attention: ABX
use_pos: False
H: 8
D: 512
D_k: 64
D_v: 64
D_inner: 2048
dropout: 0.1
attn_dropout: 0.1
lrs: False
N1: 10
I1: 5
n_token: 1
tasks:
  task0: {id: 0, name: label, act_fn: softmax, metric: accuracy}
wandb: False
swanlab: False
isParallel: False
track_efficiency: False
"""

REFERENCE_IPS_MNIST = """
n_epoch: 150
n_epoch_warmup: 10
B: 16
B_seq: 16
lr: 0.001
wd: 0.1
enc_type: resnet18
n_res_blocks: 2
n_chan_in: 1
single: True
M: 100
I: 100
S: 50
attention: CA
use_pos: True
tasks:
  task0: {id: 0, name: majority, act_fn: softmax, metric: accuracy}
  task1: {id: 1, name: max, act_fn: softmax, metric: accuracy}
  task2: {id: 2, name: top, act_fn: softmax, metric: accuracy}
  task3: {id: 3, name: multi, act_fn: sigmoid, metric: multilabel_accuracy}
"""


def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_round_trips(name: str, tmp_path) -> None:
    config, notes = load_config(name)
    assert notes == []
    save_config(config, tmp_path / "resolved.yaml")
    again, _ = load_config(tmp_path / "resolved.yaml")
    assert again == config


def test_presets_are_the_expected_ones() -> None:
    assert {"quickstart", "mnist_ips", "mnist_dbps", "mnist_dbps_plus"} <= set(preset_names())
    for name, method in (("mnist_ips", Method.IPS), ("mnist_dbps", Method.DBPS), ("mnist_dbps_plus", Method.DBPS_PLUS)):
        config, _ = load_config(name)
        s, t = config.selection, config.train
        assert (config.selection.method, s.num_salient, s.chunk_size, config.model.dim) == (method, 100, 100, 128)
        assert (t.batch_size, t.lr, t.epochs, config.patches.size, config.data.generate.size) == (
            16, 1e-3, 150, (50, 50), 1500,
        )
        aggregator = {Method.IPS: "CA", Method.DBPS: "DA", Method.DBPS_PLUS: "ABX"}[method]
        assert config.model.aggregator == aggregator  # each preset is the method it names
    assert load_config("mnist_ips")[0].patches.shuffle  # as the IPS config
    assert load_config("mnist_dbps_plus")[0].patches.drop_ratio == 0.0  # as the DBPS code on this dataset
    assert load_config("mnist_dbps_plus")[0].model.attention_per_task  # one branch per task, as CA's queries


def test_reference_dbformer_plus_config_loads_as_it_is(tmp_path) -> None:
    config, notes = load_config(write(tmp_path, REFERENCE_DBFORMER_PLUS))
    assert config.selection.method is Method.DBPS_PLUS and config.selection.sampling is Sampling.HALF
    assert (config.selection.num_salient, config.selection.chunk_size, config.selection.num_context) == (2, 10, None)
    assert (config.train.batch_size, config.train.micro_batch_size, config.train.lr) == (128, 32, 1e-4)
    assert config.patches.size == (200, 200) and config.patches.drop_ratio == 0.3 and config.patches.num_patches == 30
    assert config.model.aggregator == "ABX" and config.model.dim == 512 and config.model.num_classes == 7
    assert config.data.root == "/data/cqu_bpdd" and config.tasks[0].name == "label"
    noted = " ".join(notes)
    for key in ("eps", "N1", "I1", "isParallel", "eager", "track_efficiency", "S:"):
        if key in REFERENCE_DBFORMER_PLUS or key == "S:":
            assert key in noted, key


def test_reference_ips_config_is_the_single_buffer_method(tmp_path) -> None:
    config, _ = load_config(write(tmp_path, REFERENCE_IPS_MNIST))
    assert config.selection.method is Method.IPS and config.selection.num_context is None
    assert [t.name for t in config.tasks] == ["majority", "max", "top", "multi"]
    assert config.tasks[3].activation == "sigmoid" and config.tasks[3].metric == "multilabel_accuracy"
    assert (config.model.encoder_stages, config.model.in_chans, config.model.pos_enc) == (2, 1, True)


def test_unknown_keys_are_errors_that_name_them(tmp_path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "M: 4\nMM: 5\nselection: {num_salinet: 3}\n"))
    message = str(error.value)
    assert "unknown key 'MM'" in message and "unknown key 'selection.num_salinet'" in message
    assert "did you mean 'num_salient'" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("M: ten", "selection.num_salient"),
        ("M: true", "selection.num_salient"),
        ("lr: fast", "train.lr"),
        ("use_pos: 1", "model.pos_enc"),
        ("patch_size: [50, 50, 50]", "patches.size"),
        ("sample_style: Random", "selection.sampling"),
        ("tasks: 3", "tasks"),
        ("train: 5", "train"),
        ("model: {encoder: small_cnn, encoder_widths: [8, 0]}", "model.encoder_widths"),
        ("model: {encoder: resnet18, encoder_widths: [8, 16]}", "model.encoder_widths: only small_cnn"),
    ],
)
def test_ill_typed_values_are_errors_that_name_the_key(tmp_path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(write(tmp_path, text + "\n"))


def test_inconsistent_values_are_reported_together() -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({"B": 16, "B_seq": 5, "M": 0, "lrs": "maybe", "selection": {"method": "dbps"}})
    lines = str(error.value).splitlines()
    assert any("train.micro_batch_size" in line for line in lines)
    assert any("num_salient" in line for line in lines)
    assert any(line.startswith("lrs") for line in lines)


def test_overrides_accept_both_spellings_and_yaml_values() -> None:
    config, _ = load_config(
        "quickstart", ["M=5", "selection.chunk_size=7", "patches.size=[25, 30]", "tasks=[majority]", "lr=2e-4"]
    )
    assert (config.selection.num_salient, config.selection.chunk_size, config.patches.size) == (5, 7, (25, 30))
    assert [t.name for t in config.tasks] == ["majority"] and config.train.lr == 2e-4
    with pytest.raises(ConfigError, match="not key=value"):
        load_config("quickstart", ["M"])


def test_method_specific_checks() -> None:
    with pytest.raises(ConfigError, match="num_context"):
        config_from_dict({"selection": {"method": "dbps"}})
    with pytest.raises(ConfigError, match="sampling"):
        config_from_dict({"selection": {"method": "ips", "sampling": "half"}})
    with pytest.raises(ConfigError, match="buffer_update"):
        config_from_dict({"selection": {"method": "ips", "buffer_update": "two_stage"}})
    config, _ = load_config("quickstart", ["selection.buffer_update=Two_Stage"])
    assert PatchSelector.from_config(config).buffer_update == "two_stage"


def test_missing_config_and_bad_yaml_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_saved_config_is_plain_yaml(tmp_path) -> None:
    config, _ = load_config("quickstart")
    save_config(config, tmp_path / "c.yaml")
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert data["selection"]["method"] == "dbps" and data["patches"]["size"] == [56, 56]
    assert data["patches"]["stride"] == [28, 28]


@pytest.mark.parametrize("dataset", sorted(ref.HEAD_SHAPES))
@pytest.mark.parametrize("variant", sorted(ref.HEAD_VARIANTS))
def test_head_reference_configs_run_what_the_head_code_runs(tmp_path, dataset: str, variant: str) -> None:
    path = ref.write(tmp_path / f"{dataset}_{variant}.yml", ref.head_config(dataset, variant))
    config, notes = load_config(path, ["data_dir=/data/x"])
    height, width, n_class, side, _ = ref.HEAD_SHAPES[dataset]
    s = config.selection
    expected = {
        "db+": (Method.DBPS_PLUS, Sampling.HALF, "ABX", 0.3),
        "db": (Method.DBPS_PLUS, Sampling.HARD, "CA", 0.0),
        "ips": (Method.IPS, Sampling.HARD, "CA", 0.3),
    }[variant]
    assert (s.method, s.sampling, config.model.aggregator, config.patches.drop_ratio) == expected
    assert s.num_context is None and (s.num_salient, s.chunk_size, s.eval_num_salient) == (2, 10, 2)
    assert config.data.resize == [height, width] and config.patches.size == (side, side)
    assert config.model.num_classes == n_class and config.model.pretrained and config.tasks[0].name == "sign"
    assert notes[0].startswith(f"runs {s.method.value}: ") and any(n.startswith("S: unused") for n in notes)
    assert ("HEAD" in notes[0]) == (variant != "ips")
    assert config.data.root == "/data/x"


@pytest.mark.parametrize("dataset", [*sorted(ref.CVPR_SHAPES), "camelyon"])
def test_cvpr_era_configs_are_the_chunked_dual_buffer(tmp_path, dataset: str) -> None:
    config, notes = load_config(ref.write(tmp_path / "c.yml", ref.cvpr_config(dataset)))
    assert config.selection.method is Method.DBPS and notes[0].startswith("runs dbps: CVPR-era")
    assert any(n.startswith("M1: accepted and ignored") for n in notes)
    if dataset == "camelyon":
        s = config.selection
        assert (s.num_salient, s.chunk_size, s.num_context) == (100, 500, 400)
        assert config.model.encoder == "projector" and config.data.train_file == "feat_train.hdf5"
        assert config.tasks[0].activation == "sigmoid" and config.tasks[0].metric == "auc"
        assert config.train.micro_batch_size == 1 and config.model.in_chans == 1024


def test_ips_mnist_config_is_ips(tmp_path) -> None:
    config, notes = load_config(ref.write(tmp_path / "mnist_config.yml", ref.ips_mnist_config()))
    assert config.selection.method is Method.IPS and notes[0].startswith("runs ips: IPS config")
    assert [t.name for t in config.tasks] == ["majority", "max", "top", "multi"]
    assert config.tasks[3].activation == "sigmoid" and config.model.encoder == "resnet18"


def test_low_resolution_scoring_and_resize_keys() -> None:
    config, _ = config_from_dict({"lrs": True, "height": 600, "width": 800, "S": 4})
    assert config.selection.score_scale == 0.5 and config.data.resize == [600, 800]
    assert PatchSelector.from_config(config).score_scale == 0.5
    with pytest.raises(ConfigError, match="height: given without width"):
        config_from_dict({"height": 600})


@pytest.mark.parametrize(
    ("overrides", "resize"),
    [
        (["height=400", "width=400"], [400, 400]),  # both on the command line, over the file's
        (["height=400"], [400, 1000]),  # one on the command line, the other from the file
        (["width=640"], [1200, 640]),
    ],
)
def test_reference_keys_on_the_command_line_join_the_files_keys(tmp_path, overrides, resize) -> None:
    path = ref.write(tmp_path / "cqu_bpdd_db+.yml", ref.head_config("cqu_bpdd", "db+"))
    config, _ = load_config(path, ["data.name=cqu_bpdd", *overrides])
    assert config.data.resize == resize


def test_a_reference_key_pair_split_between_file_and_command_line(tmp_path) -> None:
    file = {key: value for key, value in ref.head_config("cqu_bpdd", "db+").items() if key != "width"}
    path = ref.write(tmp_path / "no_width.yml", file)
    with pytest.raises(ConfigError, match="height: given without width"):
        load_config(path)
    config, _ = load_config(path, ["width=500"])
    assert config.data.resize == [1200, 500]
    config, _ = load_config(ref.write(tmp_path / "db.yml", ref.head_config("cqu_bpdd", "db")), ["single=True"])
    assert config.selection.method is Method.IPS  # the method is read from the file's keys and the command line's


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["sample_style=Weird"], "sample_style (selection.sampling) must be one of 'hard'"),
        (["B_seq=3"], "B_seq (train.micro_batch_size): must divide train.batch_size (128)"),
        (["patch_size=[0, 5, 1]"], "patch_size (patches.size): expected 2 values"),
        (["height=0", "width=0"], "height, width (data.resize): expected [height, width]"),
        (["selection.sampling=weird"], "selection.sampling must be one of"),  # our key, as the user wrote it
    ],
)
def test_errors_name_the_key_as_the_user_wrote_it(tmp_path, overrides, expected) -> None:
    path = ref.write(tmp_path / "cqu_bpdd_db+.yml", ref.head_config("cqu_bpdd", "db+"))
    with pytest.raises(ConfigError) as error:
        load_config(path, overrides)
    assert str(error.value).startswith(expected), str(error.value)


def test_names_checked_when_the_run_is_built_carry_the_users_key_too(tmp_path) -> None:
    from dbps.engine.build import check_config

    path = ref.write(tmp_path / "cqu_bpdd_db+.yml", ref.head_config("cqu_bpdd", "db+"))
    config, _ = load_config(path, ["attention=XYZ", "enc_type=nonet"])
    with pytest.raises(ConfigError) as error:
        check_config(config)
    lines = str(error.value).splitlines()
    assert any(line.startswith("attention (model.aggregator): unknown aggregator 'XYZ'") for line in lines), lines
    assert any(line.startswith("enc_type (model.encoder): unknown encoder 'nonet'") for line in lines), lines
    config, _ = load_config("quickstart", ["model.aggregator=XYZ"])
    with pytest.raises(ConfigError, match=r"^model\.aggregator: unknown aggregator"):
        check_config(config)
    config, _ = load_config("quickstart", ["model.context_gate=true"])  # the quickstart's aggregator is CA
    with pytest.raises(ConfigError, match=r"^model\.context_gate: gates DA's context read; model\.aggregator is CA"):
        check_config(config)
    check_config(load_config("quickstart", ["model.context_gate=true", "model.aggregator=da"])[0])
    config, _ = load_config("quickstart", ["selection.mask_blank=true", "model.aggregator=TransMIL"])
    with pytest.raises(ConfigError, match=r"^selection\.mask_blank: TransMIL cannot leave tokens out"):
        check_config(config)
    check_config(load_config("quickstart", ["selection.mask_blank=true", "model.aggregator=ABX"])[0])


def test_mask_blank_without_skip_blank_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"selection: mask_blank needs skip_blank"):
        load_config("quickstart", ["selection.mask_blank=true", "selection.skip_blank=false"])


def test_a_named_data_folder_that_does_not_exist_is_not_generated_into(tmp_path) -> None:
    from dbps.engine.build import prepare_data

    file = {"data": {"root": str(tmp_path / "mine"), "generate": {"n_train": 2, "n_test": 2, "size": 120,
                                                                  "n_noise": 0}},
            "selection": {"method": "ips", "num_salient": 2, "chunk_size": 4}}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(file))
    config, _ = load_config(path, [f"dataset_path={tmp_path / 'typo'}"])
    with pytest.raises(FileNotFoundError) as error:
        prepare_data(config, progress=False)
    assert str(error.value) == (
        f"dataset_path (data.root) {tmp_path / 'typo'}: no dataset there; make it with `dbps make-data megapixel-mnist "
        f"--out {tmp_path / 'typo'} --n-train 2 --n-test 2 --size 120 --noise 0 --seed 0`, or give data.generate too "
        "to generate it there while training (a path named on the command line is never filled on its own)"
    )
    assert not (tmp_path / "typo").exists()
    for overrides, root in (([], "mine"), ([f"data.root={tmp_path / 'mine'}"], "mine"),
                            ([f"data.root={tmp_path / 'asked'}", "data.generate.seed=1"], "asked")):
        config, _ = load_config(path, overrides)
        splits, _ = prepare_data(config, progress=False)  # the file's own root, or generation asked for
        assert len(splits.test) == 2 and (tmp_path / root / "meta.json").is_file()


def test_every_config_key_is_documented_in_docs_config() -> None:
    import dataclasses
    from pathlib import Path

    from dbps.config import schema

    def keys(cls: type, prefix: str = "") -> list[str]:
        found = []
        for field in dataclasses.fields(cls):
            nested = getattr(schema, field.type, None) if isinstance(field.type, str) else field.type
            is_section = dataclasses.is_dataclass(nested)
            found += keys(nested, f"{prefix}{field.name}.") if is_section else [prefix + field.name]
        return found

    documented = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    all_keys = keys(schema.Config)
    assert len(all_keys) > 50
    assert [key for key in all_keys if f"`{key}`" not in documented] == []


def test_pos_gate_without_pos_enc_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model\.pos_gate: gates the positional encoding; model\.pos_enc is false"):
        load_config("quickstart", ["model.pos_gate=true"])
    assert load_config("mnist_ips", ["model.pos_gate=true"])[0].model.pos_gate


def test_pos_gate_init_needs_the_gate() -> None:
    with pytest.raises(ConfigError, match=r"model\.pos_gate_init: sets the positional gate's start"):
        load_config("mnist_ips", ["model.pos_gate=false", "model.pos_gate_init=0.25"])
    assert load_config("mnist_ips", ["model.pos_gate_init=0.25"])[0].model.pos_gate_init == 0.25
