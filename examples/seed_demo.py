"""Prints the seed article's pooling examples computed by jaxpool (and torch, if present).

Run: ``python -m examples.seed_demo``
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxpool

SIXTEEN = jnp.arange(1.0, 17.0).reshape(4, 4)
GRID = jnp.array([[1.0, 3, 2, 4], [5, 6, 8, 7], [4, 2, 1, 0], [9, 7, 3, 2]])


def main() -> None:
    def as_image(a):  # (H, W) -> (N, H, W, C), channels-last
        return a[None, :, :, None]
    print("input 1..16 as 4x4:\n", np.asarray(SIXTEEN))
    print(
        "max_pool2d 2x2 stride 2:\n",
        np.asarray(jaxpool.max_pool2d(as_image(SIXTEEN), 2, 2)[0, ..., 0]),
    )
    print(
        "avg_pool2d 2x2 stride 2:\n",
        np.asarray(jaxpool.avg_pool2d(as_image(SIXTEEN), 2, 2)[0, ..., 0]),
    )
    print("\ninput:\n", np.asarray(GRID))
    print(
        "max_pool2d 2x2 stride 2:\n",
        np.asarray(jaxpool.max_pool2d(as_image(GRID), 2, 2)[0, ..., 0]),
    )
    print(
        "global average:",
        float(jaxpool.global_avg_pool(as_image(GRID))[0, 0]),
        "(the article prints 4.25, but the 16 values sum to 64: 64 / 16 = 4.0)",
    )
    print("global max:", float(jaxpool.global_max_pool(as_image(GRID))[0, 0]))
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return
    grid = torch.tensor(np.asarray(GRID))[None, None]
    print(
        "\ntorch agrees:",
        F.max_pool2d(grid, 2).squeeze().tolist(),
        float(F.adaptive_avg_pool2d(grid, 1)),
        float(F.adaptive_max_pool2d(grid, 1)),
    )


if __name__ == "__main__":
    main()
