"""The 2-D lab: MLP GANs on mixtures of Gaussians, trained in minutes on a CPU, scored by modes covered.

``gankit toy ring8|grid25|spiral [--unroll 5] [--minibatch 100] ...`` (:mod:`gankit.cli.toy`),
or from Python :func:`gankit.toy.lab.train_toy`. ``gankit toy xy`` draws the simultaneous
gradient steps on f(x, y) = x·y.
"""
