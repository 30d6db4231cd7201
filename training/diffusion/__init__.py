"""Library pieces of the diffusion recipes (:mod:`training.sd35`): image/caption data, the
VAE/text encoders with their caches, the rectified-flow loss, safetensors checkpoints and the
validation pass."""
