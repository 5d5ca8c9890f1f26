"""Score networks: shapes, noise-level dependence, the paper's parameter count, clear errors."""
import pytest
import torch

from ncsn_core.config import ConfigError, get_preset
from ncsn_core.models import CondInstanceNormPlus, build_model, conv_flops, count_parameters
from ncsn_core.models import ops
from ncsn_core.models.normalization import cond_instance_norm_plus_reference, instance_stats


def _cfg(arch, size, n_channels, **model):
    cfg = get_preset("mnist-cpu-levels").override("data", image_size=size, channels=n_channels)
    cfg = cfg.override("model", arch=arch, **model).override("noise", num_classes=4)
    return cfg


@pytest.mark.parametrize("arch,extra", [("refinenet", {"ngf": 8}), ("compact", {"channels": (8, 12, 16)})])
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 1)])
def test_image_models_map_shape_and_depend_on_level(arch, extra, size, channels):
    torch.manual_seed(0)
    model = build_model(_cfg(arch, size, channels, **extra)).eval()
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        out0 = model(x, torch.zeros(2, dtype=torch.long))
        out3 = model(x, torch.full((2,), 3, dtype=torch.long))
    assert out0.shape == x.shape
    assert not torch.allclose(out0, out3)


def test_mlp_maps_shape_and_depends_on_level():
    torch.manual_seed(0)
    model = build_model(get_preset("toy"))
    with torch.no_grad():  # embeddings start at zero: give them a value to test the dependence
        for e in model.net.embeds:
            e.weight.normal_()
    x = torch.randn(5, 2)
    a, b = model(x, torch.zeros(5, dtype=torch.long)), model(x, torch.full((5,), 9, dtype=torch.long))
    assert a.shape == (5, 2) and not torch.allclose(a, b)


def test_paper_refinenet_matches_reference_parameter_count_and_flops():
    # ermongroup/ncsn CondRefineNetDilated, 1x28x28, ngf=64, 10 levels: 7,638,657 parameters, of which
    # 216,960 in the 71 CondInstanceNorm++ embeddings; 3.79 GFLOP per image in convolutions.
    model = build_model(get_preset("mnist-paper"))
    assert count_parameters(model) == 7_638_657
    assert sum(p.numel() for n, p in model.named_parameters() if "embed" in n) == 216_960
    norms = [m for m in model.modules() if type(m).__name__ == "CondInstanceNormPlus"]
    assert len(norms) == 71
    flops = conv_flops(model, torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long))
    assert flops / 1e9 == pytest.approx(3.79, abs=0.01)


def test_paper_refinenet_downsamples_once():
    model = build_model(get_preset("mnist-paper").override("model", ngf=8))
    sizes = []
    hooks = [getattr(model.net, f"res{k}")[-1].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
             for k in (1, 2, 3, 4)]
    model(torch.rand(1, 1, 28, 28), torch.zeros(1, dtype=torch.long))
    for h in hooks:
        h.remove()
    assert sizes == [28, 14, 14, 14]


def test_compact_model_is_much_cheaper_than_the_papers():
    x, lab = torch.zeros(1, 1, 28, 28), torch.zeros(1, dtype=torch.long)
    paper = conv_flops(build_model(get_preset("mnist-paper")), x, lab)
    compact = conv_flops(build_model(get_preset("mnist-cpu-levels")), x, lab)
    assert compact * 20 < paper


@pytest.mark.parametrize("size,channels,match", [(30, 1, "multiple of 4"), (28, 2, "1 or 3"), (4, 1, "at least 8")])
def test_bad_shapes_get_clear_errors(size, channels, match):
    with pytest.raises(ConfigError, match=match):
        build_model(_cfg("compact", size, channels))


def test_unknown_arch_and_preset_errors():
    with pytest.raises(ConfigError, match="choose one of"):
        get_preset("mnist-cpu-levels").override("model", arch="unet")
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")


def test_dropout_acts_only_while_training_and_only_on_the_compact_model():
    torch.manual_seed(0)
    model = build_model(_cfg("compact", 28, 1, channels=(8, 12, 16), dropout=0.2))
    plain = build_model(_cfg("compact", 28, 1, channels=(8, 12, 16)))
    plain.load_state_dict(model.state_dict())  # dropout adds no weights
    x, lab = torch.rand(2, 1, 28, 28), torch.ones(2, dtype=torch.long)
    with torch.no_grad():
        assert not torch.allclose(model.train()(x, lab), model(x, lab))  # a fresh mask per call
        assert torch.equal(model.eval()(x, lab), plain.eval()(x, lab))  # sampling sees the whole network
    with pytest.raises(ConfigError, match="compact model"):
        _cfg("refinenet", 28, 1, dropout=0.1)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        _cfg("compact", 28, 1, dropout=1.0)


def test_attention_starts_as_the_identity_then_learns_and_only_on_the_compact_model():
    torch.manual_seed(0)
    model = build_model(_cfg("compact", 28, 1, channels=(8, 12, 16), attention=True))
    plain = build_model(_cfg("compact", 28, 1, channels=(8, 12, 16)))
    extra = plain.load_state_dict(model.state_dict(), strict=False).unexpected_keys
    assert extra and all(".attn." in k for k in extra)  # the block's own weights, nothing else renamed
    x, lab = torch.rand(2, 1, 28, 28), torch.ones(2, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(model(x, lab), plain(x, lab))  # zero-initialised output projection
    model(x, lab).square().mean().backward()
    attn = model.net.attn
    assert attn.proj.weight.grad.abs().sum() > 0  # the block is trained from the first step
    with torch.no_grad():
        attn.proj.weight.normal_(0, 0.1)
        assert not torch.allclose(model(x, lab), plain(x, lab))  # and it is on the forward path
    with pytest.raises(ConfigError, match="compact model"):
        _cfg("refinenet", 28, 1, attention=True)


# --- the fast CondInstanceNorm++ equals the paper's formula, values and gradients ------------------
def _reference_forward(norm, x, labels):
    gamma, alpha, beta = norm.embed(labels).chunk(3, dim=1)
    return cond_instance_norm_plus_reference(x, gamma, alpha, beta)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_cond_instance_norm_plus_equals_the_formula_with_gradients(memory_format):
    torch.manual_seed(0)
    norm = CondInstanceNormPlus(6, 4).double()
    with torch.no_grad():
        norm.embed.weight.normal_()  # beta and alpha away from their initial values
    x = (3 + 2 * torch.randn(5, 6, 7, 9, dtype=torch.double)).contiguous(memory_format=memory_format)
    labels = torch.tensor([0, 3, 1, 1, 2])
    grads = []
    for fn in (norm, lambda x_, l_: _reference_forward(norm, x_, l_)):
        xx = x.clone().requires_grad_(True)
        norm.zero_grad()
        out = fn(xx, labels)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.double).view_as(out)).sum().backward()
        grads.append((out.detach(), xx.grad, norm.embed.weight.grad.clone()))
    for fast, ref in zip(*grads):
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)


def test_instance_stats_gradcheck():
    x = torch.randn(2, 3, 4, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: instance_stats(t), (x,))


@pytest.mark.parametrize("arch,extra", [("refinenet", {"ngf": 8}), ("compact", {"channels": (8, 12, 16)})])
def test_models_equal_the_term_by_term_channels_first_formulation(arch, extra, monkeypatch):
    # the speed work (fused norm, ELU in place, channels-last) must not change what the network computes
    torch.manual_seed(0)
    model = build_model(_cfg(arch, 28, 1, **extra)).double()
    x, labels = torch.rand(3, 1, 28, 28, dtype=torch.double), torch.tensor([0, 2, 3])
    fast = model(x, labels)
    fast.sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    monkeypatch.setattr(CondInstanceNormPlus, "forward", _reference_forward)
    model = model.to(memory_format=torch.contiguous_format)  # channels-first: conv1x1_cat concatenates
    ref = model.net(x, labels)
    ref = ref / model.sigmas[labels].view(-1, 1, 1, 1) if model.scale_by_sigma else ref
    ref.sum().backward()
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)
    for g, p in zip(fast_grads, model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("weight_format", [torch.channels_last, torch.contiguous_format])
def test_conv1x1_cat_equals_conv_of_the_concatenation_with_gradients(weight_format):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(7, 4, 1).double().to(memory_format=weight_format)
    cl = torch.channels_last
    u = torch.randn(3, 5, 6, 6, dtype=torch.double).contiguous(memory_format=cl).requires_grad_(True)
    h = torch.randn(3, 2, 6, 6, dtype=torch.double).contiguous(memory_format=cl).requires_grad_(True)
    fast = ops.conv1x1_cat(conv, u, h)
    assert fast.is_contiguous(memory_format=cl)
    w = torch.randn_like(fast)
    gf = torch.autograd.grad((fast * w).sum(), [u, h, conv.weight, conv.bias])
    ref = conv(torch.cat([u, h], dim=1))
    gr = torch.autograd.grad((ref * w).sum(), [u, h, conv.weight, conv.bias])
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(gf, gr):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert gf[2].stride() == conv.weight.stride()  # else DDP warns that grads and its buckets differ in layout


def test_compact_model_runs_under_cpu_bf16_autocast():
    """The skip merge's in-place product must not meet bf16 activations and fp32 weights (it raised before)."""
    from ncsn_core.config import get_preset
    from ncsn_core.models import build_model
    cfg = get_preset("mnist-cpu")
    model = build_model(cfg).to(memory_format=torch.channels_last).eval()
    x = torch.rand(2, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    sigma = torch.full((2,), 0.5)
    with torch.no_grad():
        ref = model(x, sigma)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, sigma)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).norm() <= 0.05 * ref.norm()
