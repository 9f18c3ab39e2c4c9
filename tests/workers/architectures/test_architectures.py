"""CIFAR architectures: output shapes, parameter counts of the sources, and the names the LLPF recipes' phases use."""

from __future__ import annotations

import pytest
import torch

from lowloss.workers.architectures import ARCHITECTURES, build_architecture
from lowloss.workers.llpf import select_tensors


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a loaded machine they cost a lot."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# parameters for 10 classes, as the reference implementations build them
EXPECTED_PARAMS = {
    "resnet18_cifar": 11_173_962,  # torchvision ResNet18 with the 3×3 stem: ≈ 11.17M
    "cct7_3x1_32": 3_760_139,  # CCT paper: CCT-7/3x1 3.76M
    "mobilenetv2_cifar": 2_237_770,
    "shufflenet_cifar": 960_706,
    "shufflenetv2_cifar": 1_263_854,
    "vgg11_cifar": 9_231_114,
    "densenet121_cifar": 6_956_298,
    "efficientnetb0_cifar": 3_599_686,
    "regnetx_200mf_cifar": 2_321_946,
    "dla_cifar": 16_291_386,
    # AutoNEB §4.2 / Table B.1. CIFAR ResNets with the 1×1-projection shortcut (option B, the AutoNEB authors' code);
    # option A counts (He et al. 2016, Table 6: 0.27M, 0.46M, 0.66M, 0.85M) are checked below.
    "resnet8": 78_042,
    "resnet20": 272_474,
    "resnet32": 466_906,
    "resnet44": 661_338,
    "resnet56": 855_770,
    "densenet40_12": 1_019_722,  # Huang et al. 2017, Table 2: DenseNet (k = 12), depth 40: 1.0M
    "cnn12x1": 790_706,  # 5×5 conv 12 + BN, 16×16×12 → FC 256 + BN → 10
    "cnn24x1": 1_578_074,
    "cnn36x1": 2_365_442,
    "cnn48x1": 3_152_810,
    "cnn96x1": 6_302_282,
    "cnn48x2": 851_258,
    "cnn48x3": 319_178,
}

# He et al. 2016 Table 6 (CIFAR-10, option A shortcuts): exact counts of the standard implementation
OPTION_A_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: build_architecture(name, num_classes=10, in_channels=3) for name in ARCHITECTURES}


def test_every_architecture_is_registered_and_counted():
    assert set(ARCHITECTURES) == set(EXPECTED_PARAMS)


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_forward_shape_and_parameter_count(models, name):
    model = models[name]
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_num_classes_in_channels_and_train_mode():
    m = build_architecture("regnetx_200mf_cifar", num_classes=100, in_channels=1)
    assert m.train()(torch.randn(2, 1, 32, 32)).shape == (2, 100)
    m = build_architecture("cct7_3x1_32", num_classes=7, in_channels=3, stochastic_depth=0.0, attention_dropout=0.0)
    x = torch.randn(2, 3, 32, 32)
    m.train()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))  # dropout-free when asked: train mode is deterministic
    m = build_architecture("cct7_3x1_32", num_classes=7)  # reference drop path / attention dropout in train mode
    with torch.no_grad():
        assert m.train()(x).shape == (2, 7)
    with pytest.raises(ValueError, match="unknown architecture 'resnet19'"):
        build_architecture("resnet19", 10, 3)


def test_resnet18_names_and_cifar_stem(models):
    m = models["resnet18_cifar"]
    names = list(m.state_dict())
    for n in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.0.bn2.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer4.1.conv2.weight",
        "fc.weight",
        "fc.bias",
    ]:
        assert n in names
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and m.conv1.padding == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)
    # LLPF Table 6 phases resolve
    assert select_tensors(names, ["conv1.weight", "bn1.{weight+bias}"]) == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert len(select_tensors(names, ["layer1.*"])) == 2 * 2 * (1 + 5)  # 2 blocks × (2 convs + 2 BNs × 5 tensors)


def test_cct_names_used_by_the_recipes(models):
    m = models["cct7_3x1_32"]
    names = list(m.state_dict())
    for n in [
        "tokenizer.conv_layers.0.0.weight",
        "classifier.positional_emb",
        "classifier.attention_pool.weight",
        "classifier.attention_pool.bias",
        "classifier.blocks.0.pre_norm.weight",
        "classifier.blocks.0.self_attn.qkv.weight",
        "classifier.blocks.0.self_attn.proj.weight",
        "classifier.blocks.0.linear1.weight",
        "classifier.blocks.0.norm1.weight",
        "classifier.blocks.0.linear2.bias",
        "classifier.blocks.6.linear2.weight",
        "classifier.norm.weight",
        "classifier.fc.weight",
        "classifier.fc.bias",
    ]:
        assert n in names
    assert "classifier.blocks.7.linear1.weight" not in names
    assert m.state_dict()["classifier.positional_emb"].shape == (1, 256, 256)
    assert m.state_dict()["tokenizer.conv_layers.0.0.weight"].shape == (256, 3, 3, 3)
    assert "classifier.blocks.0.self_attn.qkv.bias" not in names
    # LLPF Table 1, CCT7 phase 1, resolves to the tokenizer and the classifier's non-block tensors
    phase1 = select_tensors(names, ["tokenizer.conv_layers", "classifier.{positional_emb+attention_pool+norm+fc}"])
    assert phase1 == [
        "tokenizer.conv_layers.0.0.weight",
        "classifier.positional_emb",
        "classifier.attention_pool.weight",
        "classifier.attention_pool.bias",
        "classifier.norm.weight",
        "classifier.norm.bias",
        "classifier.fc.weight",
        "classifier.fc.bias",
    ]
    assert len(select_tensors(names, ["classifier.blocks.1.*"])) == 11  # 2 LayerNorms, qkv, proj, linear1, linear2


@pytest.mark.parametrize("name", sorted(OPTION_A_PARAMS))
def test_cifar_resnets_option_a_match_he_et_al(name):
    m = build_architecture(name, num_classes=10, in_channels=3, shortcut="A")
    count = sum(p.numel() for p in m.parameters())
    assert count == OPTION_A_PARAMS[name]
    published = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6}[name]
    assert abs(count - published) < 0.005e6
    assert not any("shortcut" in n for n in m.state_dict())  # option A has no projection tensors
    with torch.no_grad():
        assert m.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_autoneb_models_structure_and_small_inputs():
    from lowloss.workers.models import build_model

    r = build_architecture("resnet20")
    assert len(r.layer1) == len(r.layer2) == len(r.layer3) == 3
    assert r.layer2[0].shortcut[0].kernel_size == (1, 1) and r.layer2[0].shortcut[0].stride == (2, 2)
    d = build_architecture("densenet40_12")
    assert len(d.block1) == len(d.block2) == len(d.block3) == 12 and d.fc.in_features == 16 + 36 * 12
    assert abs(sum(p.numel() for p in d.parameters()) - 1.0e6) < 0.03e6
    c = build_model("cnn48x2", num_classes=10, in_channels=1, image_size=8)  # first FC sized by the image
    assert c.features[0].conv.kernel_size == (5, 5) and c.fc1.in_features == 48 * 2 * 2 and c.fc1.out_features == 256
    with torch.no_grad():
        assert c.eval()(torch.randn(3, 1, 8, 8)).shape == (3, 10)
        assert build_model("resnet20", 10, 1, 8).eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="depth 21"):
        build_architecture("resnet20").__class__(21)
