"""tftj: a Kubernetes-native operator for distributed TensorFlow training."""

__version__ = "0.1.0"
