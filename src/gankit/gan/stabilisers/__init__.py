"""Stabilisers of GAN training, each a small module with its paper.

- :mod:`.minibatch`: minibatch discrimination (Salimans et al. 2016, sec. 3.2) and the
  minibatch-standard-deviation layer (Karras et al. 2018, sec. 3), for the discriminator;
- :mod:`.vbn`: virtual batch normalisation (Salimans et al. 2016, sec. 3.4), for the generator;
- :mod:`.matching`: feature matching (Salimans et al. 2016, sec. 3.1), a generator loss;
- :mod:`.noise`: instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017), on D's inputs;
- :mod:`.unrolled`: unrolled GANs (Metz et al. 2017), the generator's loss against a
  discriminator k optimiser steps ahead, differentiated through those steps.

They act on tensors and modules and know nothing of tasks: the 2-D lab (:mod:`gankit.toy`) and
the image GAN switch them on from the config.
"""

from gankit.gan.stabilisers.matching import feature_matching_loss, penultimate
from gankit.gan.stabilisers.minibatch import MinibatchDiscrimination, MinibatchStdDev
from gankit.gan.stabilisers.noise import instance_noise, instance_noise_std
from gankit.gan.stabilisers.unrolled import unrolled_parameters
from gankit.gan.stabilisers.vbn import VirtualBatchNorm, VirtualBatchNormNet

__all__ = [
    "MinibatchDiscrimination",
    "MinibatchStdDev",
    "VirtualBatchNorm",
    "VirtualBatchNormNet",
    "feature_matching_loss",
    "instance_noise",
    "instance_noise_std",
    "penultimate",
    "unrolled_parameters",
]
