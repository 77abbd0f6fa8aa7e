"""Shared SSM building blocks that every architecture plugin reuses."""

from zoo.nn.backbone import GLU, ChannelNorm, DropoutNd, PositionwiseLinear, ResidualBlock, SequenceModel
from zoo.nn.optim import param_groups
from zoo.nn.ssm import (
    DiagonalSSMKernel,
    SSMConv,
    bidirectional_kernel,
    fft_conv,
    init_diagonal_A,
    register_ssm_parameter,
)
from zoo.nn.surrogate import SURROGATES, spike, straight_through_clamp

__all__ = [
    "GLU", "ChannelNorm", "DropoutNd", "PositionwiseLinear", "ResidualBlock", "SequenceModel", "param_groups",
    "DiagonalSSMKernel", "SSMConv", "bidirectional_kernel", "fft_conv", "init_diagonal_A",
    "register_ssm_parameter", "SURROGATES", "spike", "straight_through_clamp",
]

from zoo.nn.dplr import DPLRConv, DPLRKernel, hippo_legs, hippo_legs_dplr  # noqa: E402

__all__ += ["DPLRConv", "DPLRKernel", "hippo_legs", "hippo_legs_dplr"]
