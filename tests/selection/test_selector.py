"""Selection against brute force, the memory bound, eval mode and argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dbps.config import load_config
from dbps.engine.step import predict
from dbps.models import PatchClassifier, PatchEncoder, create_aggregator
from dbps.patches import FeaturePatches, ImagePatches
from dbps.selection import PatchSelector, eval_mode
from dbps.selection.blank import EMBED_ROWS_MULTIPLE, blank_patches
from dbps.tasks import TaskSpec
from tests.conftest import tiny_model


def feature_model(heads: int = 1, tasks: int = 1, dim: int = 8, in_dim: int = 6) -> PatchClassifier:
    """A linear encoder over feature vectors: cheap and free of batch-size effects."""
    encoder = PatchEncoder(nn.Linear(in_dim, dim), dim)
    aggregator = create_aggregator("CA", dim=dim, num_tasks=tasks, heads=heads, dim_key=4, dim_value=4)
    return PatchClassifier(encoder, aggregator, [TaskSpec(f"t{i}", 3) for i in range(tasks)])


def global_ranking(model: PatchClassifier, features: torch.Tensor) -> torch.Tensor:
    """Patch indices of each instance sorted by score over all N patches at once, (B, N)."""
    with torch.no_grad():
        emb = model.embed(features.flatten(0, 1)).unflatten(0, features.shape[:2])
        idx = torch.arange(features.shape[1]).expand(features.shape[0], -1)
        return model.score(emb, idx).argsort(dim=1, descending=True)


def as_sets(idx: torch.Tensor) -> list[set[int]]:
    return [set(row.tolist()) for row in idx]


@pytest.mark.parametrize("chunk", [1, 3, 7, 16, 40, 64])
def test_single_head_ips_equals_global_top_m(chunk: int) -> None:
    model, features = feature_model(), torch.randn(3, 40, 6)
    selection = PatchSelector("ips", num_salient=5, chunk_size=chunk).select(
        model, FeaturePatches(features), training=False
    )
    assert as_sets(selection.salient_idx) == as_sets(global_ranking(model, features)[:, :5])
    assert selection.context_emb.shape == (3, 0, 8)


@pytest.mark.parametrize("chunk", [1, 4, 9, 40])
def test_single_head_dbps_dynamic_buffer_is_global_ranks_m_to_m_plus_s(chunk: int) -> None:
    model, features = feature_model(), torch.randn(2, 40, 6)
    selection = PatchSelector("dbps", num_salient=4, chunk_size=chunk, num_context=7).select(
        model, FeaturePatches(features), training=False
    )
    ranking = global_ranking(model, features)
    assert as_sets(selection.salient_idx) == as_sets(ranking[:, :4])
    assert as_sets(selection.context_idx) == as_sets(ranking[:, 4:11])
    with torch.no_grad():  # the buffer holds the embeddings of exactly those patches
        expected = model.embed(FeaturePatches(features).fetch(selection.context_idx).flatten(0, 1))
    torch.testing.assert_close(selection.context_emb.flatten(0, 1), expected)


def naive_iterative_selection(model: PatchClassifier, features: torch.Tensor, keep: int, chunk: int) -> list[list[int]]:
    """The buffer procedure written out per instance with Python lists: keep the best `keep` of buffer ∪ chunk."""
    result = []
    for inst in features:
        buffer: list[int] = []
        for start in range(0, inst.shape[0], chunk):
            cand = buffer + list(range(start, min(start + chunk, inst.shape[0])))
            with torch.no_grad():
                emb = model.embed(inst[cand])[None]
                scores = model.score(emb, torch.tensor(cand)[None])[0]
            buffer = [cand[i] for i in scores.argsort(descending=True)[:keep].tolist()]
        result.append(buffer)
    return result


def test_multi_head_chunked_selection_is_the_iterative_procedure_not_the_global_top_m() -> None:
    """With several heads or tasks the score is a mean of softmaxes, so it depends on the candidate set.

    What holds: the batched selection equals the per-instance buffer procedure, and one chunk of all
    patches equals the global top-M. What does not: chunked selection equals the global top-M.
    """
    torch.manual_seed(3)
    model, features = feature_model(heads=4, tasks=2), torch.randn(4, 60, 6) * 3
    source = FeaturePatches(features)
    chunked = PatchSelector("dbps", num_salient=6, chunk_size=5, num_context=4).select(model, source, training=False)
    naive = naive_iterative_selection(model, features, keep=10, chunk=5)
    assert [row.tolist() for row in torch.cat([chunked.salient_idx, chunked.context_idx], 1)] == naive
    one_chunk = PatchSelector("ips", num_salient=6, chunk_size=60).select(model, source, training=False)
    ranking = global_ranking(model, features)
    assert as_sets(one_chunk.salient_idx) == as_sets(ranking[:, :6])
    assert as_sets(chunked.salient_idx) != as_sets(ranking[:, :6])


def naive_two_stage_selection(
    model: PatchClassifier, features: torch.Tensor, num_salient: int, num_context: int, chunk: int
) -> list[tuple[list[int], list[int]]]:
    """The reference's two-stage update per instance with Python lists: (static, dynamic) patch indices."""

    def ranked(inst: torch.Tensor, cand: list[int]) -> list[int]:
        with torch.no_grad():
            scores = model.score(model.embed(inst[cand])[None], torch.tensor(cand)[None])[0]
        return [cand[i] for i in scores.argsort(descending=True).tolist()]

    result = []
    for inst in features:
        static: list[int] = []
        dynamic: list[int] = []
        for start in range(0, inst.shape[0], chunk):
            order = ranked(inst, static + list(range(start, min(start + chunk, inst.shape[0]))))
            static, dropped = order[:num_salient], order[num_salient:]
            dynamic = ranked(inst, dynamic + dropped)[:num_context] if dynamic + dropped else []
        result.append((static, dynamic))
    return result


@pytest.mark.parametrize(("heads", "tasks", "chunk"), [(4, 2, 5), (2, 1, 9), (1, 3, 4), (3, 2, 60)])
def test_two_stage_update_is_the_reference_procedure(heads: int, tasks: int, chunk: int) -> None:
    torch.manual_seed(3)
    model, features = feature_model(heads=heads, tasks=tasks), torch.randn(4, 60, 6) * 3
    selection = PatchSelector("dbps", 6, chunk, 4, buffer_update="two_stage").select(
        model, FeaturePatches(features), training=False
    )
    naive = naive_two_stage_selection(model, features, num_salient=6, num_context=4, chunk=chunk)
    assert as_sets(selection.salient_idx) == [set(static) for static, _ in naive]
    assert as_sets(selection.context_idx) == [set(dynamic) for _, dynamic in naive]
    with torch.no_grad():
        expected = model.embed(FeaturePatches(features).fetch(selection.context_idx).flatten(0, 1))
    torch.testing.assert_close(selection.context_emb.flatten(0, 1), expected)


def test_with_several_heads_and_tokens_two_stage_and_joint_keep_different_patches() -> None:
    torch.manual_seed(3)
    model, source = feature_model(heads=4, tasks=2), FeaturePatches(torch.randn(8, 60, 6) * 3)
    joint, two_stage = (
        PatchSelector("dbps", 6, 5, 4, buffer_update=update).select(model, source, training=False)
        for update in ("joint", "two_stage")
    )
    kept = [torch.cat([s.salient_idx, s.context_idx], 1) for s in (joint, two_stage)]
    assert as_sets(kept[0]) != as_sets(kept[1])


@pytest.mark.parametrize("chunk", [1, 4, 9, 40])
def test_with_one_head_and_one_token_both_updates_keep_the_global_ranks(chunk: int) -> None:
    model, features = feature_model(), torch.randn(3, 40, 6)
    ranking = global_ranking(model, features)
    for update in ("joint", "two_stage"):
        selection = PatchSelector("dbps", 4, chunk, 7, buffer_update=update).select(
            model, FeaturePatches(features), training=False
        )
        assert as_sets(selection.salient_idx) == as_sets(ranking[:, :4])
        assert as_sets(selection.context_idx) == as_sets(ranking[:, 4:11])


class CountingEncoder(nn.Module):
    """Records how many patches each call sees, with and without gradients, and the mode it runs in."""

    def __init__(self, inner: PatchEncoder) -> None:
        super().__init__()
        self.inner, self.embed_dim = inner, inner.embed_dim
        self.no_grad_calls: list[int] = []
        self.grad_calls: list[int] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (self.grad_calls if torch.is_grad_enabled() else self.no_grad_calls).append(x.shape[0])
        self.modes.append(self.training)
        return self.inner(x)


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
@pytest.mark.parametrize("side", [32, 64, 96])
def test_encoder_sees_at_most_b_times_i_patches_without_grad_and_b_times_m_with(method: str, side: int) -> None:
    from dbps.engine.step import forward_backward

    model = tiny_model("DA")
    counter = CountingEncoder(model.encoder)
    model.encoder = counter
    model.train()
    batch, chunk, salient = 2, 5, 3
    selector = PatchSelector(method, num_salient=salient, chunk_size=chunk, num_context=4 if method == "dbps" else None)
    source = ImagePatches(torch.rand(batch, 1, side, side), 8)
    forward_backward(model, selector, source, {"label": torch.tensor([0, 1])})
    assert max(counter.no_grad_calls) <= batch * chunk
    assert sum(counter.no_grad_calls) == batch * source.num_patches  # every patch embedded exactly once
    assert counter.grad_calls == [batch * salient]
    assert counter.modes == [False] * len(counter.no_grad_calls) + [True]


def test_num_salient_at_least_n_selects_everything_without_embedding() -> None:
    model = feature_model()
    counter = CountingEncoder(model.encoder)
    model.encoder = counter
    selection = PatchSelector("ips", num_salient=50, chunk_size=4).select(
        model, FeaturePatches(torch.randn(2, 9, 6)), training=False
    )
    assert selection.salient_idx.tolist() == [list(range(9))] * 2
    assert counter.no_grad_calls == []


def test_dbps_plus_context_is_every_kept_patch_not_selected() -> None:
    model, features = feature_model(), torch.randn(3, 30, 6)
    selector = PatchSelector("dbps+", num_salient=4, chunk_size=7, drop_ratio=0.3, sampling="half")
    gen = torch.Generator().manual_seed(0)
    selection = selector.select(model, FeaturePatches(features), training=True, generator=gen)
    assert selection.salient_idx.shape == (3, 4) and selection.context_idx.shape == (3, 21 - 4)
    for sal, ctx, scores in zip(selection.salient_idx, selection.context_idx, selection.scores, strict=True):
        kept = set(torch.nonzero(~scores.isnan()).flatten().tolist())
        assert len(kept) == 21 and set(sal.tolist()) | set(ctx.tolist()) == kept
        assert not set(sal.tolist()) & set(ctx.tolist())
    capped = PatchSelector("dbps+", num_salient=4, chunk_size=7, num_context=5).select(
        model, FeaturePatches(features), training=False
    )
    ranking = global_ranking(model, features)
    assert as_sets(capped.salient_idx) == as_sets(ranking[:, :4])
    assert as_sets(capped.context_idx) == as_sets(ranking[:, 4:9])


def test_dbps_plus_scores_are_the_global_attention_weights() -> None:
    model, features = feature_model(heads=2), torch.randn(2, 20, 6)
    selection = PatchSelector("dbps+", num_salient=3, chunk_size=6).select(
        model, FeaturePatches(features), training=False
    )
    with torch.no_grad():
        emb = model.embed(features.flatten(0, 1)).unflatten(0, (2, 20))
        expected = model.score(emb, torch.arange(20).expand(2, 20))
    torch.testing.assert_close(selection.scores, expected)


def test_eval_mode_is_restored_module_by_module() -> None:
    model = tiny_model("CA")
    model.train()
    model.encoder.backbone[1].eval()  # one BatchNorm deliberately frozen
    before = [m.training for m in model.modules()]
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before


def test_selection_does_not_update_batchnorm_statistics() -> None:
    model = tiny_model("CA")
    model.train()
    stats = model.encoder.backbone[1].running_mean.clone()
    source = ImagePatches(torch.rand(2, 1, 32, 32), 8)
    PatchSelector("ips", num_salient=2, chunk_size=4).select(model, source, training=True)
    assert torch.equal(model.encoder.backbone[1].running_mean, stats)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_salient": 0}, "num_salient"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"num_context": -1}, "num_context"),
        ({"method": "fast"}, "method"),
        ({"sampling": "random"}, "sampling"),
        ({"method": "ips", "num_context": 3}, "num_context"),
        ({"method": "dbps", "sampling": "half"}, "sampling"),
        ({"drop_ratio": 1.5}, "drop_ratio"),
        ({"temperature": 0.0}, "temperature"),
        ({"buffer_update": "staged"}, "buffer_update"),
        ({"method": "ips", "buffer_update": "two_stage"}, "buffer_update"),
    ],
)
def test_bad_selector_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PatchSelector(**kwargs)


def test_method_and_sampling_names_are_case_insensitive() -> None:
    selector = PatchSelector("DBPS+", sampling="Half", shuffle="Batch")
    assert (selector.method, selector.sampling, selector.shuffle) == ("dbps+", "half", "batch")


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
def test_explore_draws_the_salient_set_uniformly_whatever_the_scores(method: str) -> None:
    model, features = feature_model(), torch.randn(1, 12, 6)
    features[0, 0] *= 50  # a patch the attention would pick every time
    source = FeaturePatches(features.expand(2000, -1, -1))
    selector = PatchSelector(method, num_salient=3, chunk_size=5, num_context=2 if method == "dbps" else None)
    gen = torch.Generator().manual_seed(0)
    selection = selector.select(model, source, training=True, generator=gen, explore=True)
    frequency = torch.bincount(selection.salient_idx.flatten(), minlength=12).float() / 2000
    # 2000 draws of 3 of 12: each patch has probability 1/4, standard error < 0.01
    torch.testing.assert_close(frequency, torch.full((12,), 0.25), atol=0.05, rtol=0)
    assert selection.scores.isnan().all()
    assert not selector.select(model, source, training=False, generator=gen, explore=True).scores.isnan().all()


@pytest.mark.parametrize(
    ("method", "num_context", "drop_ratio", "num_patches", "empty"),
    [
        ("ips", None, 0.0, 20, True),
        ("dbps", 0, 0.0, 20, True),
        ("dbps", 3, 0.0, 20, False),
        ("dbps", 3, 0.0, 4, True),  # M = 4 reaches every patch
        ("dbps", 3, 0.5, 8, True),  # M = 4 reaches the 4 patches kept of 8
        ("dbps+", None, 0.0, 20, False),
        ("dbps+", None, 0.0, 4, True),
        ("dbps+", 0, 0.0, 20, True),
    ],
)
def test_context_may_be_empty_says_when_a_training_selection_has_no_context(
    method: str, num_context: int | None, drop_ratio: float, num_patches: int, empty: bool
) -> None:
    selector = PatchSelector(method, num_salient=4, chunk_size=3, num_context=num_context, drop_ratio=drop_ratio)
    assert selector.context_may_be_empty(num_patches) is empty
    gen = torch.Generator().manual_seed(0)
    selection = selector.select(feature_model(), FeaturePatches(torch.randn(2, num_patches, 6)), training=True,
                                generator=gen)
    assert (selection.context_emb.shape[1] == 0) is empty
    if not empty:  # not knowing N only leaves out the cases that depend on it
        assert not selector.context_may_be_empty()


def features_with_blank_favourites(model: PatchClassifier, n: int = 24, blank: int = 10) -> torch.Tensor:
    """(2, n, 6) features whose first `blank` patches are one constant vector that the model ranks above every
    other patch: the case `skip_blank` is for (an attention that prefers the shared empty-canvas embedding)."""
    torch.manual_seed(0)
    features = torch.randn(2, n, 6)
    for value in torch.linspace(-20, 20, 81):
        features[:, :blank] = value
        if (global_ranking(model, features)[:, 0] < blank).all():
            return features
    raise AssertionError("no constant vector ranks first: the test cannot show what skip_blank changes")


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("ips", {}),
        ("dbps", {"num_context": 5}),
        ("dbps", {"num_context": 5, "buffer_update": "two_stage"}),
        ("dbps+", {}),
        ("dbps+", {"sampling": "half"}),
    ],
)
@pytest.mark.parametrize("explore", [False, True])
def test_skip_blank_keeps_blank_patches_out_while_others_are_left(method: str, kwargs: dict, explore: bool) -> None:
    model = feature_model()
    features = features_with_blank_favourites(model)
    gen = torch.Generator().manual_seed(0)
    plain = PatchSelector(method, num_salient=4, chunk_size=7, **kwargs)
    skipping = PatchSelector(method, num_salient=4, chunk_size=7, skip_blank=True, **kwargs)
    if not explore:  # the model's own ranking puts a blank patch first
        assert (plain.select(model, FeaturePatches(features), training=True, generator=gen).salient_idx < 10).any()
    selection = skipping.select(model, FeaturePatches(features), training=True, generator=gen, explore=explore)
    assert (selection.salient_idx >= 10).all()
    if method == "dbps":  # 4 salient + 5 context of the 14 patches with content
        assert (selection.context_idx >= 10).all()
    if method == "ips" and not explore:  # the single-head ranking restricted to the patches with content
        ranking = global_ranking(model, features)
        expected = [[i for i in row.tolist() if i >= 10][:4] for row in ranking]
        assert as_sets(selection.salient_idx) == [set(row) for row in expected]


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
def test_skip_blank_fills_up_with_blank_patches_where_too_few_have_content(method: str) -> None:
    model = feature_model()
    features = features_with_blank_favourites(model, n=12, blank=10)  # 2 patches with content, M = 4
    selector = PatchSelector(method, num_salient=4, chunk_size=5, num_context=3 if method == "dbps" else None,
                             skip_blank=True)
    selection = selector.select(model, FeaturePatches(features), training=False)
    assert selection.salient_idx.shape == (2, 4)
    assert all({10, 11} <= row for row in as_sets(selection.salient_idx))
    assert (selection.scores[:, :10] == 0).all()


def test_skip_blank_marks_constant_image_patches() -> None:
    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 0, 0] = 1.0  # one pixel of ink in patch 0
    images[0, 0, 8:, 8:] = 0.5  # patch 3: grey but constant
    patches = ImagePatches(images, 8).fetch(torch.arange(4)[None])
    assert blank_patches(patches).tolist() == [[False, True, True, True]]


def test_skip_blank_is_read_from_the_config() -> None:
    assert PatchSelector.from_config(load_config("quickstart", ["selection.skip_blank=true"])[0]).skip_blank
    assert not PatchSelector.from_config(load_config("quickstart", ["selection.skip_blank=false"])[0]).skip_blank


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
def test_skip_blank_embeds_each_blank_value_once_and_selects_as_if_it_embedded_every_patch(method: str) -> None:
    images = torch.zeros(3, 1, 48, 48)
    images[:, :, 40:, :] = 0.25  # a grey band: blank patches of a second value
    images[:, :, 10:30, 5:40] = torch.rand(3, 1, 20, 35)
    model = tiny_model("CA", dim=16).eval()
    seen: list[int] = []
    model.encoder.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    source = ImagePatches(images, 8)
    kwargs = {"num_context": 4} if method == "dbps" else {}
    skipping = PatchSelector(method, num_salient=3, chunk_size=36, skip_blank=True, **kwargs)
    selection = skipping.select(model, source, training=False)
    patches = source.fetch(torch.arange(36).expand(3, -1))
    num_blank = int(blank_patches(patches).sum())
    rows = 3 * 36 - num_blank + 2  # two blank values: black and grey
    padded = min(-(-rows // EMBED_ROWS_MULTIPLE) * EMBED_ROWS_MULTIPLE, 3 * 36)  # never past the chunk's size
    assert seen == [padded]
    with torch.no_grad():  # every patch embedded on its own, blank ones ranked last by hand
        emb = model.embed(patches.flatten(0, 1)).unflatten(0, (3, 36))
        scores = model.score(emb, torch.arange(36).expand(3, -1)).masked_fill(blank_patches(patches), 0)
    torch.testing.assert_close(selection.scores, scores)
    assert as_sets(selection.salient_idx) == as_sets(scores.topk(3, dim=1).indices)


@pytest.mark.parametrize(
    ("method", "num_salient", "num_context"), [("ips", 8, None), ("dbps", 4, 4), ("dbps+", 4, None)]
)
def test_mask_blank_hands_the_blank_patches_to_the_aggregator_and_the_model_leaves_them_out(
    method: str, num_salient: int, num_context: int | None
) -> None:
    images = torch.zeros(2, 1, 48, 48)
    images[:, :, 8:24, 8:32] = torch.rand(2, 1, 16, 24)  # 6 of the 36 patches of each image have content
    source = ImagePatches(images, 8)
    model = tiny_model("CA", dim=16).eval()
    kwargs = {"num_salient": num_salient, "chunk_size": 12, "num_context": num_context, "skip_blank": True}
    assert PatchSelector(method, **kwargs).select(model, source, training=False).masked is None
    selection = PatchSelector(method, mask_blank=True, **kwargs).select(model, source, training=False)
    assert selection.masked.tolist() == blank_patches(source.fetch(torch.arange(36).expand(2, -1))).tolist()
    salient_kept = ~selection.masked.gather(1, selection.salient_idx)
    context_kept = ~selection.masked.gather(1, selection.context_idx)
    assert (salient_kept.sum(1) + context_kept.sum(1)).tolist() == [6, 6]  # the blank ones are selected too
    with torch.no_grad():
        patches = source.fetch(selection.salient_idx)
        args = (patches, selection.salient_idx, selection.context_emb, selection.context_idx)
        outputs, unmasked = model(*args, selection.masked), model(*args)
        for b in range(2):  # each image alone, its blank patches removed by hand
            s, c = salient_kept[b], context_kept[b]
            alone = model(patches[b : b + 1, s], selection.salient_idx[b : b + 1, s],
                          selection.context_emb[b : b + 1, c], selection.context_idx[b : b + 1, c])
            for name in outputs:
                torch.testing.assert_close(outputs[name][b : b + 1], alone[name])
                assert not torch.allclose(outputs[name][b : b + 1], unmasked[name][b : b + 1])


@pytest.mark.parametrize("method", ["ips", "dbps"])
def test_mask_blank_with_every_patch_salient_finds_the_blank_ones_in_the_fetched_patches(method: str) -> None:
    images = torch.zeros(2, 1, 24, 24)
    images[:, :, 4:12, 2:20] = torch.rand(2, 1, 8, 18)  # 6 of the 9 patches of each image have content
    source = ImagePatches(images, 8)
    model = tiny_model("CA", dim=16).eval()
    embedded: list[int] = []
    model.encoder.register_forward_hook(lambda _m, args, _out: embedded.append(args[0].shape[0]))
    selector = PatchSelector(method, num_salient=9, chunk_size=4, num_context=2 if method == "dbps" else None,
                             skip_blank=True, mask_blank=True)
    selection = selector.select(model, source, training=False)
    assert embedded == [] and selection.masked is None  # M ≥ N: the no-gradient pass embeds nothing
    patches = source.fetch(selection.salient_idx)
    masked = selection.aggregation_mask(patches)
    assert masked.tolist() == blank_patches(source.fetch(torch.arange(9).expand(2, -1))).tolist()
    outputs, _ = predict(model, selector, source)
    for b in range(2):  # each image alone, its blank patches removed by hand
        content = ~masked[b].gather(0, selection.salient_idx[b])
        with torch.no_grad():
            alone = model(patches[b : b + 1, content], selection.salient_idx[b : b + 1, content],
                          selection.context_emb[b : b + 1], selection.context_idx[b : b + 1])
        for name in outputs:
            torch.testing.assert_close(outputs[name][b : b + 1], alone[name])
    unmasked = PatchSelector(method, num_salient=9, chunk_size=4, skip_blank=True)
    assert unmasked.select(model, source, training=False).aggregation_mask(patches) is None


def test_mask_blank_keeps_every_token_of_an_all_blank_image() -> None:
    source = ImagePatches(torch.zeros(1, 1, 32, 32), 8)
    model = tiny_model("CA", dim=16).eval()
    selector = PatchSelector("dbps", num_salient=3, chunk_size=8, num_context=4, skip_blank=True, mask_blank=True)
    selection = selector.select(model, source, training=False)
    assert selection.masked.all()
    with torch.no_grad():
        patches = source.fetch(selection.salient_idx)
        args = (patches, selection.salient_idx, selection.context_emb, selection.context_idx)
        for name, logits in model(*args, selection.masked).items():
            torch.testing.assert_close(logits, model(*args)[name])


def test_mask_blank_needs_skip_blank() -> None:
    with pytest.raises(ValueError, match="mask_blank needs skip_blank"):
        PatchSelector("ips", num_salient=3, chunk_size=8, mask_blank=True)
    assert PatchSelector.from_config(
        load_config("quickstart", ["selection.mask_blank=true"])[0]
    ).mask_blank
