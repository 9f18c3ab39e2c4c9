"""The Compact Convolutional Transformer CCT-7/3x1 for 32×32 (``cct7_3x1_32``; SHI-Labs Compact-Transformers
naming): tokenizer, attention, encoder blocks with stochastic depth, sequence-pooling classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``drop_path``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _drop_path(x, self.drop_prob, self.training)


class Tokenizer(nn.Module):
    """CCT convolutional tokenizer: ``conv_layers.{i}.0`` Conv2d (no bias, Kaiming-normal) → ReLU → MaxPool2d."""

    def __init__(
        self,
        kernel_size: int,
        stride: int,
        padding: int,
        pooling_kernel_size: int = 3,
        pooling_stride: int = 2,
        pooling_padding: int = 1,
        n_conv_layers: int = 1,
        n_input_channels: int = 3,
        n_output_channels: int = 64,
        in_planes: int = 64,
    ):
        super().__init__()
        chans = [n_input_channels] + [in_planes] * (n_conv_layers - 1) + [n_output_channels]
        self.conv_layers = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Conv2d(
                        chans[i], chans[i + 1], kernel_size=kernel_size, stride=stride, padding=padding, bias=False
                    ),
                    nn.ReLU(),
                    nn.MaxPool2d(kernel_size=pooling_kernel_size, stride=pooling_stride, padding=pooling_padding),
                )
                for i in range(n_conv_layers)
            ]
        )
        self.flattener = nn.Flatten(2, 3)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def sequence_length(self, n_channels: int, height: int, width: int) -> int:
        with torch.no_grad():
            return self.forward(torch.zeros(1, n_channels, height, width)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flattener(self.conv_layers(x)).transpose(-2, -1)


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` (Linear, no bias) and ``proj``."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float, projection_dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(projection_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        attn = self.attn_drop(attn)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class TransformerEncoderLayer(nn.Module):
    """CCT encoder block: ``pre_norm`` → ``self_attn`` (+residual) → ``norm1`` → ``linear1``/GELU/``linear2``
    (+residual)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        attention_dropout: float,
        drop_path_rate: float,
    ):
        super().__init__()
        self.pre_norm = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, nhead, attention_dropout, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout2 = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        src = src + self.drop_path(self.self_attn(self.pre_norm(src)))
        src = self.norm1(src)
        src2 = self.linear2(self.dropout1(F.gelu(self.linear1(src))))
        return src + self.drop_path(self.dropout2(src2))


class TransformerClassifier(nn.Module):
    """CCT classifier: learnable ``positional_emb``, ``blocks``, ``norm``, sequence pooling ``attention_pool``
    (Linear(d, 1)), ``fc``. Linear weights truncated-normal(0.02), biases 0; LayerNorm 1/0; ``positional_emb``
    truncated-normal(0.2)."""

    def __init__(
        self,
        sequence_length: int,
        embedding_dim: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float,
        num_classes: int,
        dropout: float,
        attention_dropout: float,
        stochastic_depth: float,
    ):
        super().__init__()
        self.attention_pool = nn.Linear(embedding_dim, 1)
        self.positional_emb = nn.Parameter(torch.zeros(1, sequence_length, embedding_dim))
        nn.init.trunc_normal_(self.positional_emb, std=0.2)
        self.dropout = nn.Dropout(p=dropout)
        dpr = [float(x) for x in torch.linspace(0, stochastic_depth, num_layers)]
        self.blocks = nn.ModuleList(
            [
                TransformerEncoderLayer(
                    embedding_dim, num_heads, int(embedding_dim * mlp_ratio), dropout, attention_dropout, dpr[i]
                )
                for i in range(num_layers)
            ]
        )
        self.norm = nn.LayerNorm(embedding_dim)
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.apply(self._init_weight)

    @staticmethod
    def _init_weight(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x + self.positional_emb)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = torch.matmul(F.softmax(self.attention_pool(x), dim=1).transpose(-1, -2), x).squeeze(-2)
        return self.fc(x)


class CCT(nn.Module):
    """Compact Convolutional Transformer: ``tokenizer`` + ``classifier``."""

    def __init__(
        self,
        img_size: int = 32,
        embedding_dim: int = 256,
        n_input_channels: int = 3,
        n_conv_layers: int = 1,
        kernel_size: int = 3,
        stride: int | None = None,
        padding: int | None = None,
        num_layers: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_classes: int = 10,
        dropout: float = 0.0,
        attention_dropout: float = 0.1,
        stochastic_depth: float = 0.1,
    ):
        super().__init__()
        stride = stride if stride is not None else max(1, (kernel_size // 2) - 1)
        padding = padding if padding is not None else max(1, kernel_size // 2)
        self.tokenizer = Tokenizer(
            kernel_size,
            stride,
            padding,
            n_conv_layers=n_conv_layers,
            n_input_channels=n_input_channels,
            n_output_channels=embedding_dim,
        )
        seq = self.tokenizer.sequence_length(n_input_channels, img_size, img_size)
        self.classifier = TransformerClassifier(
            seq,
            embedding_dim,
            num_layers,
            num_heads,
            mlp_ratio,
            num_classes,
            dropout,
            attention_dropout,
            stochastic_depth,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.tokenizer(x))


def cct7_3x1_32(
    num_classes: int = 10,
    in_channels: int = 3,
    dropout: float = 0.0,
    attention_dropout: float = 0.1,
    stochastic_depth: float = 0.1,
) -> nn.Module:
    """CCT-7/3x1 for 32×32 inputs (SHI-Labs ``cct_7_3x1_32``): one 3×3 conv tokenizer (stride 1, padding 1, 256
    channels, no bias) + ReLU + max-pool(3, stride 2, padding 1) → 256 tokens; 7 encoder layers, 4 heads, MLP ratio 2,
    embedding 256, learnable positional embedding, sequence pooling. 3,760,139 parameters for 10 classes.

    Dropout defaults are the reference's (``CCT`` defaults, used unchanged by the authors' ``cct7_3x1_cifar10``):
    dropout 0, attention dropout 0.1, stochastic depth 0.1 (linearly 0 → 0.1 over the blocks). They draw from torch's
    global RNG in train mode, so a run is reproducible given that RNG's state; pass zeros for a dropout-free model.
    """
    return CCT(
        img_size=32,
        embedding_dim=256,
        n_input_channels=in_channels,
        n_conv_layers=1,
        kernel_size=3,
        num_layers=7,
        num_heads=4,
        mlp_ratio=2.0,
        num_classes=num_classes,
        dropout=dropout,
        attention_dropout=attention_dropout,
        stochastic_depth=stochastic_depth,
    )
