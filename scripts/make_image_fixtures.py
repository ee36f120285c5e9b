#!/usr/bin/python3
"""Regenerates tests/data/images/: small deterministic images and the golden
outputs tests/test_image.c compares against.

Needs Debian's python3-pil (run it with /usr/bin/python3, which sees it); the
C test itself needs no Python. Everything here is deterministic (a fixed LCG,
no numpy), so rerunning it rewrites the same bytes for a given Pillow.

What it writes (all listed in manifest.txt, which the test reads):

  resize  SRC.png DST.png  DST is PIL's Image.resize((w, h), Image.BILINEAR)
                           of SRC: the golden output for imcap_resize_rgb8.
  decode  FILE W H EXPECT.rgb [TOL]
                           EXPECT is the raw 8-bit RGB the spec's
                           "Preprocessing" step 1 prescribes for FILE, built
                           from the pixel values this script put into FILE
                           (not from any decoder): grey replicated, alpha
                           dropped, palettes expanded, high byte of 16-bit
                           samples. TOL (JPEG only) is the largest per-sample
                           difference allowed; for JPEG, EXPECT is PIL's
                           (libjpeg's) decoding, and stb_image's IDCT and
                           chroma upsampling differ from it by a few levels.
"""
import os
import struct
import sys
import zlib

import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "images")


class Lcg:
    """Numerical Recipes LCG: deterministic everywhere, good enough for noise."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFF

    def next(self):
        self.s = (1664525 * self.s + 1013904223) & 0xFFFFFFFF
        return self.s >> 24  # 0..255


def gradient_noise(w, h, seed, noise=48):
    """RGB: horizontal/vertical/diagonal ramps plus uniform noise, so that
    every filter tap matters and rounding differences would show."""
    r = Lcg(seed)
    px = bytearray()
    for y in range(h):
        for x in range(w):
            base = (
                255 * x // max(w - 1, 1),
                255 * y // max(h - 1, 1),
                255 * (x + y) // max(w + h - 2, 1),
            )
            for c in range(3):
                v = base[c] + (r.next() * noise) // 256 - noise // 2
                px.append(min(255, max(0, v)))
    return Image.frombytes("RGB", (w, h), bytes(px))


def checker(w, h, seed):
    """Hard edges and saturated values: 0/255 blocks with a few random pixels."""
    r = Lcg(seed)
    px = bytearray()
    for y in range(h):
        for x in range(w):
            on = ((x // 3) + (y // 2)) % 2
            for c in range(3):
                v = 255 * on if (x + c) % 7 else r.next()
                px.append(v)
    return Image.frombytes("RGB", (w, h), bytes(px))


manifest = []


def save_png(img, name):
    img.save(os.path.join(OUT, name), format="PNG", optimize=True)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def add_resize(src_name, img, sizes):
    save_png(img, src_name)
    stem = src_name[:-4]
    for (w, h) in sizes:
        out = img.resize((w, h), Image.BILINEAR)
        dst = "%s_to_%dx%d.png" % (stem, w, h)
        save_png(out, dst)
        manifest.append("resize %s %s" % (src_name, dst))


def add_decode(name, w, h, expect_rgb, tol=0):
    assert len(expect_rgb) == w * h * 3
    ename = name.replace(".", "_") + ".rgb"
    write(ename, bytes(expect_rgb))
    line = "decode %s %d %d %s" % (name, w, h, ename)
    if tol:
        line += " %d" % tol
    manifest.append(line)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def raw_png(w, h, bit_depth, color_type, rows):
    """A PNG written by hand, for the 16-bit variants PIL cannot save
    (48-bit RGB, 16-bit grey+alpha, 64-bit RGBA). rows: list of bytes,
    filter type 0 is prepended here."""
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    # ---- resize goldens: down by non-integer factors, up, one axis only,
    # to 1 pixel, and to 224 x 224 (the default image_size).
    add_resize("grad_37x23.png", gradient_noise(37, 23, 1),
               [(16, 16), (50, 40), (37, 10), (20, 23), (1, 1), (224, 224), (11, 3)])
    add_resize("grad_200x150.png", gradient_noise(200, 150, 2),
               [(224, 224), (64, 64), (13, 150), (200, 7), (97, 151)])
    add_resize("checker_5x7.png", checker(5, 7, 3), [(3, 2), (224, 224), (1, 7), (5, 1), (8, 9)])

    # ---- decoding: a 9 x 6 picture in every layout the spec names.
    w, h = 9, 6
    rgb = gradient_noise(w, h, 4, noise=90)
    rgbb = rgb.tobytes()
    r = Lcg(5)
    alpha = bytes(r.next() for _ in range(w * h))
    grey = bytes(r.next() for _ in range(w * h))
    lo = bytes(r.next() for _ in range(w * h * 4))  # low bytes of 16-bit samples

    def rep(g):  # grey -> RGB
        return bytes(v for p in g for v in (p, p, p))

    save_png(rgb, "rgb8.png")
    add_decode("rgb8.png", w, h, rgbb)

    Image.frombytes("L", (w, h), grey).save(os.path.join(OUT, "grey8.png"))
    add_decode("grey8.png", w, h, rep(grey))

    la = bytes(v for i in range(w * h) for v in (grey[i], alpha[i]))
    Image.frombytes("LA", (w, h), la).save(os.path.join(OUT, "grey_alpha8.png"))
    add_decode("grey_alpha8.png", w, h, rep(grey))  # alpha dropped, not composited

    rgba = bytes(v for i in range(w * h) for v in (rgbb[3 * i], rgbb[3 * i + 1], rgbb[3 * i + 2], alpha[i]))
    Image.frombytes("RGBA", (w, h), rgba).save(os.path.join(OUT, "rgba8.png"))
    add_decode("rgba8.png", w, h, rgbb)

    # Palette image: 7 colours, indices from the LCG.
    pal = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 240, 10), (12, 34, 56), (255, 255, 255), (0, 0, 0)]
    idx = bytes(r.next() % len(pal) for _ in range(w * h))
    p = Image.frombytes("P", (w, h), idx)
    p.putpalette([c for col in pal for c in col])
    p.save(os.path.join(OUT, "palette.png"))
    pal_rgb = bytes(c for i in idx for c in pal[i])
    add_decode("palette.png", w, h, pal_rgb)
    # The same with a tRNS chunk: transparency is alpha, and alpha is dropped.
    p.save(os.path.join(OUT, "palette_trns.png"), transparency=bytes([0, 128, 255, 7, 9, 200, 0]))
    add_decode("palette_trns.png", w, h, pal_rgb)

    # 16-bit: high byte kept, low byte (noise here) ignored.
    g16 = [grey[i] * 256 + lo[i] for i in range(w * h)]
    rows = [b"".join(struct.pack(">H", g16[y * w + x]) for x in range(w)) for y in range(h)]
    write("grey16.png", raw_png(w, h, 16, 0, rows))
    add_decode("grey16.png", w, h, rep(grey))
    rows = [b"".join(struct.pack(">HH", g16[y * w + x], alpha[y * w + x] * 257) for x in range(w)) for y in range(h)]
    write("grey_alpha16.png", raw_png(w, h, 16, 4, rows))
    add_decode("grey_alpha16.png", w, h, rep(grey))
    rows = [b"".join(struct.pack(">HHH", *(rgbb[3 * (y * w + x) + c] * 256 + lo[3 * (y * w + x) + c] for c in range(3)))
                     for x in range(w)) for y in range(h)]
    write("rgb16.png", raw_png(w, h, 16, 2, rows))
    add_decode("rgb16.png", w, h, rgbb)
    rows = [b"".join(struct.pack(">HHHH", *([rgbb[3 * (y * w + x) + c] * 256 + lo[3 * (y * w + x) + c] for c in range(3)]
                                           + [alpha[y * w + x] * 257])) for x in range(w)) for y in range(h)]
    write("rgba16.png", raw_png(w, h, 16, 6, rows))
    add_decode("rgba16.png", w, h, rgbb)
    # PIL's own 16-bit grey writer (mode I;16), as a second opinion on byte order.
    Image.frombytes("I;16", (w, h), b"".join(struct.pack("<H", v) for v in g16)).save(os.path.join(OUT, "grey16_pil.png"))
    add_decode("grey16_pil.png", w, h, rep(grey))

    # Other containers.
    rgb.save(os.path.join(OUT, "rgb.bmp"))
    add_decode("rgb.bmp", w, h, rgbb)
    rgb.save(os.path.join(OUT, "rgb.tga"))
    add_decode("rgb.tga", w, h, rgbb)
    rgb.save(os.path.join(OUT, "rgb_rle.tga"), compression="tga_rle")
    add_decode("rgb_rle.tga", w, h, rgbb)
    rgb.save(os.path.join(OUT, "rgb.ppm"))
    add_decode("rgb.ppm", w, h, rgbb)
    Image.frombytes("L", (w, h), grey).save(os.path.join(OUT, "grey.pgm"))
    add_decode("grey.pgm", w, h, rep(grey))
    bits = bytes(255 * (grey[i] >= 128) for i in range(w * h))
    Image.frombytes("L", (w, h), bits).convert("1", dither=Image.NONE).save(os.path.join(OUT, "bits.pbm"))
    add_decode("bits.pbm", w, h, rep(bits))
    # 16-bit PGM: PIL writes mode I as P5 with maxval 65535.
    Image.frombytes("I;16", (w, h), b"".join(struct.pack("<H", v) for v in g16)).convert("I").save(
        os.path.join(OUT, "grey16.pgm"))
    add_decode("grey16.pgm", w, h, rep(grey))

    # GIF: two frames; only the first one is decoded.
    frame2 = Image.frombytes("P", (w, h), bytes((i + 3) % len(pal) for i in idx))
    frame2.putpalette([c for col in pal for c in col])
    p.save(os.path.join(OUT, "anim.gif"), save_all=True, append_images=[frame2], duration=100, loop=0)
    add_decode("anim.gif", w, h, pal_rgb)

    # JPEG: a smooth picture, 4:4:4 and quality 95, so decoders agree closely.
    smooth = gradient_noise(24, 16, 6, noise=0)
    smooth.save(os.path.join(OUT, "smooth.jpg"), quality=95, subsampling=0)
    ref = Image.open(os.path.join(OUT, "smooth.jpg")).convert("RGB")
    add_decode("smooth.jpg", 24, 16, ref.tobytes(), tol=3)
    smooth.convert("L").save(os.path.join(OUT, "smooth_grey.jpg"), quality=95)
    ref = Image.open(os.path.join(OUT, "smooth_grey.jpg")).convert("RGB")
    add_decode("smooth_grey.jpg", 24, 16, ref.tobytes(), tol=3)
    # Noisy 4:2:0 JPEGs, baseline and progressive (the tests also cut them).
    gradient_noise(64, 48, 7).save(os.path.join(OUT, "photo.jpg"), quality=85)
    ref = Image.open(os.path.join(OUT, "photo.jpg")).convert("RGB")
    add_decode("photo.jpg", 64, 48, ref.tobytes(), tol=12)
    gradient_noise(48, 32, 8).save(os.path.join(OUT, "photo_prog.jpg"), quality=85, progressive=True)
    ref = Image.open(os.path.join(OUT, "photo_prog.jpg")).convert("RGB")
    add_decode("photo_prog.jpg", 48, 32, ref.tobytes(), tol=12)

    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("# written by scripts/make_image_fixtures.py (Pillow %s); see that script.\n" % PIL.__version__)
        f.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
