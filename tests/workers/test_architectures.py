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
}


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
    for n in ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "layer1.0.conv1.weight",
              "layer1.0.bn2.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
              "layer4.1.conv2.weight", "fc.weight", "fc.bias"]:
        assert n in names
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1) and m.conv1.padding == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)
    # LLPF Table 6 phases resolve
    assert select_tensors(names, ["conv1.weight", "bn1.{weight+bias}"]) == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert len(select_tensors(names, ["layer1.*"])) == 2 * 2 * (1 + 5)  # 2 blocks × (2 convs + 2 BNs × 5 tensors)


def test_cct_names_used_by_the_recipes(models):
    m = models["cct7_3x1_32"]
    names = list(m.state_dict())
    for n in ["tokenizer.conv_layers.0.0.weight", "classifier.positional_emb", "classifier.attention_pool.weight",
              "classifier.attention_pool.bias", "classifier.blocks.0.pre_norm.weight",
              "classifier.blocks.0.self_attn.qkv.weight", "classifier.blocks.0.self_attn.proj.weight",
              "classifier.blocks.0.linear1.weight", "classifier.blocks.0.norm1.weight",
              "classifier.blocks.0.linear2.bias", "classifier.blocks.6.linear2.weight", "classifier.norm.weight",
              "classifier.fc.weight", "classifier.fc.bias"]:
        assert n in names
    assert "classifier.blocks.7.linear1.weight" not in names
    assert m.state_dict()["classifier.positional_emb"].shape == (1, 256, 256)
    assert m.state_dict()["tokenizer.conv_layers.0.0.weight"].shape == (256, 3, 3, 3)
    assert "classifier.blocks.0.self_attn.qkv.bias" not in names
    # LLPF Table 1, CCT7 phase 1, resolves to the tokenizer and the classifier's non-block tensors
    phase1 = select_tensors(names, ["tokenizer.conv_layers",
                                    "classifier.{positional_emb+attention_pool+norm+fc}"])
    assert phase1 == ["tokenizer.conv_layers.0.0.weight", "classifier.positional_emb",
                      "classifier.attention_pool.weight", "classifier.attention_pool.bias", "classifier.norm.weight",
                      "classifier.norm.bias", "classifier.fc.weight", "classifier.fc.bias"]
    assert len(select_tensors(names, ["classifier.blocks.1.*"])) == 11  # 2 LayerNorms, qkv, proj, linear1, linear2
