"""SPikE-SSM plugin (architecture `spike_ssm`): the SRR neuron with exact parallel PMBC, the
SPikE-SSM block and model, and the WikiText-103 language model. Modules: `neuron` (SRRNeuron, PMBC),
`lm` (adaptive input and softmax), `model` (config, layer, model, registered entries)."""

from zoo_spike_ssm.lm import AdaptiveInput, AdaptiveLogSoftmax
from zoo_spike_ssm.model import (
    SpikeSSM,
    SpikeSSMConfig,
    SpikeSSMLayer,
    register_architectures,
    register_models,
)
from zoo_spike_ssm.neuron import SRRNeuron, srr_kernels, srr_pmbc, srr_sequential

__all__ = ["AdaptiveInput", "AdaptiveLogSoftmax", "SRRNeuron", "SpikeSSM", "SpikeSSMConfig", "SpikeSSMLayer",
           "register_architectures", "register_models", "srr_kernels", "srr_pmbc", "srr_sequential"]
