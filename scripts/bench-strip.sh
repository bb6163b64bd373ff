#!/usr/bin/env bash
# Strip stage throughput against `exiftool -all=` (batch mode, one process for all files).
# Makes N photos of about 2 MB (EXIF with GPS, XMP, comment), PNGs and PDFs with Pillow, times
# exiftool on them, then the strip functions in release (lake-functions/tests/strip_bench.rs).
# Needs python3 with Pillow and exiftool (apt-get install libimage-exiftool-perl).
#   scripts/bench-strip.sh [N=40]
set -euo pipefail
n=${1:-40}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in" "$work/out"

python3 - "$work/in" "$n" <<'PY'
import io, os, random, sys
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>Jane</dc:creator></x:xmpmeta>' * 20
base = Image.effect_noise((3000, 2000), 40).convert("RGB")
grad = Image.linear_gradient("L").resize((3000, 2000)).convert("RGB")
photo = Image.blend(base, grad, 0.5)
for i in range(n):
    e = Image.Exif()
    e[0x010F] = "TarnCam"; e[0x0112] = 6; e[0xA431] = f"SN-{i:04d}"
    e[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0 + i), 3: "E", 4: (2.0, 17.0, 40.0)}
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=80, exif=e.tobytes(), comment=b"home", xmp=xmp)
    open(os.path.join(out, f"photo{i:03d}.jpg"), "wb").write(buf.getvalue())
png = photo.resize((1200, 800))
for i in range(max(1, n // 4)):
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo(); info.add_text("Author", "Jane"); info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    png.save(os.path.join(out, f"diagram{i:03d}.png"), pnginfo=info)
for i in range(max(1, n // 4)):
    photo.resize((1500, 1000)).save(os.path.join(out, f"report{i:03d}.pdf"), "PDF", author="Jane", title="Q3")
PY
du -sh "$work/in"
for ext in jpg png pdf; do
  files=("$work"/in/*."$ext")
  start=$(date +%s.%N)
  exiftool -q -q -all= -o "$work/out/" "${files[@]}" >/dev/null 2>&1 || true
  end=$(date +%s.%N)
  rm -f "$work"/out/*
  python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'exiftool -all= {sys.argv[4]}: {n} files, {t*1e3/n:.3f} ms/file')" "$start" "$end" "${#files[@]}" "$ext"
done
TARN_STRIP_BENCH_DIR="$work/in" cargo test -q -p tarn-lake --release --test strip_bench -- --ignored --nocapture 2>&1 | grep -E "^strip|panicked|test result" -A1
