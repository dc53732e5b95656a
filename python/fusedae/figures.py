"""Pictures of what an autoencoder learned, written as PNG without matplotlib.

The images are grayscale mosaics (learned features, reconstructions) that
need nothing beyond NumPy and the standard library, so ``python -m fusedae
demo`` draws them on a bare install.
"""
import struct
import zlib

import numpy as np

from ._files import write_atomically


def write_png(path, image):
    """Write a 2-D uint8 array as an 8-bit grayscale PNG, atomically.

    The file appears complete or not at all: it is written to a temporary
    file in the same folder and renamed over ``path``.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image: expected a non-empty 2-D array, got shape {image.shape}")
    h, w = image.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), image], axis=1)  # filter byte 0 per row

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
           + chunk(b"IEND", b""))
    write_atomically(path, png)


def mosaic(tiles, cols, *, pad=1, scale=6, background=0.0):
    """Lay out ``tiles`` (n, h, w) with values in [0, 1] on a grid; uint8 result."""
    tiles = np.asarray(tiles, dtype=np.float64)
    n, h, w = tiles.shape
    rows = -(-n // cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), background)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
               pad + c * (w + pad):pad + c * (w + pad) + w] = tile
    canvas = np.kron(canvas, np.ones((scale, scale)))
    return np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)


def feature_grid(weights, image_shape, *, cols=None, scale=6):
    """Each hidden unit's input weights as an image (columns of ``weights``).

    Normalised as in the classic sparse-autoencoder display: each filter has
    its mean removed and is divided by its largest magnitude, so mid-gray is
    zero, white the strongest positive and black the strongest negative weight.
    """
    W = np.asarray(weights, dtype=np.float64).T            # N × D
    W = W - W.mean(axis=1, keepdims=True)
    W = W / np.maximum(np.abs(W).max(axis=1, keepdims=True), 1e-12)
    tiles = 0.5 + 0.5 * W.reshape(-1, *image_shape)
    cols = cols or int(np.ceil(np.sqrt(len(tiles))))
    return mosaic(tiles, cols, scale=scale, background=0.0)


def reconstruction_rows(*rows, image_shape, scale=6):
    """Stack rows of images (e.g. inputs, then reconstructions), values in [0, 1]."""
    count = len(rows[0])
    tiles = np.concatenate([np.clip(np.asarray(r, dtype=np.float64), 0, 1) for r in rows])
    return mosaic(tiles.reshape(-1, *image_shape), count, scale=scale, background=0.25)
