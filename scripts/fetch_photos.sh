#!/usr/bin/env bash
# Fetches real photographs for the in-domain test (tests/test_domain.c) from
# Debian packages, without installing them: the sample images of
# scikit-image (python3-skimage) and matplotlib's Grace Hopper portrait
# (python-matplotlib-data), into DIR (default build/photos). Idempotent.
# Needs apt's package lists (scripts/setup.sh updates them).
set -euo pipefail
dir="${1:-build/photos}"
photos=(astronaut.png brick.png camera.png cell.png chelsea.png clock_motion.png coffee.png coins.png grass.png
        gravel.png hubble_deep_field.jpg ihc.png moon.png motorcycle_left.png motorcycle_right.png retina.jpg
        rocket.jpg)
[ -f "$dir/grace_hopper.jpg" ] && [ -f "$dir/rocket.jpg" ] && exit 0
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && apt-get download python3-skimage python-matplotlib-data >/dev/null 2>&1 ) || {
  echo "fetch_photos.sh: apt-get download failed (no package lists or no network?)" >&2; exit 1; }
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
for p in "${photos[@]}"; do cp "$work/x/usr/lib/python3/dist-packages/skimage/data/$p" "$dir/"; done
cp "$work/x/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg" "$dir/"
echo "fetch_photos.sh: $(ls "$dir" | wc -l) photographs in $dir"
