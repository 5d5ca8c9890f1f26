"""A tiny colour data set for the 3-channel tests (core and studio): 32 x 32 RGB images, red left half, blue
right half, and a green 6 x 6 square at (r, r), r = 4 + 4 (i % 5), so that colours and places can be checked."""
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE, GREEN = (220, 30, 30), (30, 40, 210), (30, 200, 40)


def colour_image(i: int) -> np.ndarray:
    a = np.zeros((32, 32, 3), np.uint8)
    a[:, :16], a[:, 16:] = RED, BLUE
    r = 4 + (i % 5) * 4
    a[r:r + 6, r:r + 6] = GREEN
    return a


def write_colour_folder(root: Path, n: int = 24) -> Path:
    for i in range(n):
        Image.fromarray(colour_image(i)).save(root / f"img_{i:02d}.png")
    return root
