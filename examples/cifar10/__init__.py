"""CIFAR-10 training example for jaxpool: data loading (``data``) and the Optax trainer."""
