#!/usr/bin/env bash
# Re-create dashboard/static/vendor/ from the npm registry and the folium sdist on PyPI.
#
# Maintainer tool, NOT run at setup: the vendored files are committed so that installs and the
# dashboard need no network at all. Run it again only when folium (or one of its asset
# versions) changes; then update ASSETS in dashboard/offline.py and VENDOR.md to match.
#
# Reproducible: every tarball is checked against the SHA-256 recorded below, and only the
# files listed here are copied. Needs `npm` and the project's .venv (for `pip download`).
#
# Usage: scripts/vendor_assets.sh            (from the repository root or anywhere)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/dashboard/static/vendor"
PIP="$ROOT/.venv/bin/pip"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# tarball name | sha256 (tarballs from `npm pack`, and the folium sdist from PyPI)
SUMS="
bootstrap-5.2.2.tgz 6ae3403f9085283be866fd9bca04f3034ffc755e466e6a1ff9836e8c0a1340d4
drmonty-leaflet-awesome-markers-2.0.2.tgz 462ab5a8fe53883d44d7c7a1c79c8e43c748ba026abbb9dbefe9e586645a4473
fortawesome-fontawesome-free-6.2.0.tgz 627ba11e9f2923be8f4c3f8688b9b4f17d787ce02691f32837893f53e8276c2a
jquery-3.7.1.tgz 68a9f787516da47c680e09c187bcbac4536b6f85d90eb882844e12919e583f53
leaflet-1.9.3.tgz 10d016716b56048661eaf9cde004dc82e80bd3613b52c4f53cf5aec73088006c
leaflet.markercluster-1.1.0.tgz 47219016d91e524b329a0fb2365961bf8228109bb58e370ad0b1ab6299288b91
folium-0.20.0.tar.gz a0d78b9d5a36ba7589ca9aedbd433e84e9fcab79cd6ac213adbcff922e454cb9
"

fetch() {
    (cd "$WORK" && npm pack --silent "$@" >/dev/null)
}

verify() {
    local name=$1 want
    want=$(awk -v n="$name" '$1 == n {print $2}' <<<"$SUMS")
    echo "$want  $WORK/$name" | sha256sum --check --quiet
}

# unpack TARBALL into $WORK/<dir>, then copy FILE... (paths inside the package) to DEST/<target>
copy_from() {
    local tarball=$1 target=$2
    shift 2
    local src="$WORK/unpacked/$tarball"
    mkdir -p "$src"
    tar -xzf "$WORK/$tarball" -C "$src"
    local top
    top=$(find "$src" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    for file in "$@"; do
        install -D -m 0644 "$top/$file" "$DEST/$target/$file"
    done
}

echo "Downloading packages into $WORK ..."
fetch leaflet@1.9.3 jquery@3.7.1 bootstrap@5.2.2 @fortawesome/fontawesome-free@6.2.0 \
    leaflet.markercluster@1.1.0 drmonty-leaflet-awesome-markers@2.0.2
"$PIP" download --quiet --no-deps --no-binary :all: -d "$WORK" folium==0.20.0

while read -r name _; do
    [[ -n "$name" ]] && verify "$name"
done <<<"$SUMS"

# Keep the hand-written VENDOR.md; everything else is re-created from the tarballs.
mkdir -p "$DEST"
find "$DEST" -mindepth 1 -maxdepth 1 ! -name VENDOR.md -exec rm -rf {} +

copy_from leaflet-1.9.3.tgz leaflet@1.9.3 \
    LICENSE dist/leaflet.js dist/leaflet.css \
    dist/images/layers.png dist/images/layers-2x.png dist/images/marker-icon.png \
    dist/images/marker-icon-2x.png dist/images/marker-shadow.png

copy_from jquery-3.7.1.tgz jquery@3.7.1 LICENSE.txt dist/jquery.min.js

copy_from bootstrap-5.2.2.tgz bootstrap@5.2.2 \
    LICENSE dist/js/bootstrap.bundle.min.js dist/css/bootstrap.min.css

copy_from fortawesome-fontawesome-free-6.2.0.tgz @fortawesome/fontawesome-free@6.2.0 \
    LICENSE.txt css/all.min.css \
    webfonts/fa-brands-400.woff2 webfonts/fa-brands-400.ttf \
    webfonts/fa-regular-400.woff2 webfonts/fa-regular-400.ttf \
    webfonts/fa-solid-900.woff2 webfonts/fa-solid-900.ttf \
    webfonts/fa-v4compatibility.woff2 webfonts/fa-v4compatibility.ttf

# Leaflet.awesome-markers 2.0.2 (the version folium asks cdnjs for) is on npm only as this
# mirror of the upstream release; its JS is byte-identical to leaflet.awesome-markers@2.0.4.
copy_from drmonty-leaflet-awesome-markers-2.0.2.tgz drmonty-leaflet-awesome-markers@2.0.2 \
    js/leaflet.awesome-markers.min.js css/leaflet.awesome-markers.css \
    css/images/markers-soft.png css/images/markers-soft@2x.png \
    css/images/markers-shadow.png css/images/markers-shadow@2x.png

copy_from leaflet.markercluster-1.1.0.tgz leaflet.markercluster@1.1.0 \
    MIT-LICENCE.txt dist/leaflet.markercluster.js dist/MarkerCluster.css \
    dist/MarkerCluster.Default.css

# folium's own files (HeatMap's patched leaflet-heat, the awesome-marker rotate CSS). The rotate
# CSS is only in the sdist, not in the installed wheel; folium's CDN serves a minified copy, so
# leading indentation is stripped here.
mkdir -p "$WORK/unpacked/folium"
tar -xzf "$WORK/folium-0.20.0.tar.gz" -C "$WORK/unpacked/folium"
FOLIUM_SRC="$WORK/unpacked/folium/folium-0.20.0"
install -D -m 0644 "$FOLIUM_SRC/LICENSE.txt" "$DEST/folium@0.20.0/LICENSE.txt"
install -D -m 0644 "$FOLIUM_SRC/folium/templates/leaflet_heat.min.js" \
    "$DEST/folium@0.20.0/templates/leaflet_heat.min.js"
sed -e 's/^[[:space:]]*//' "$FOLIUM_SRC/folium/templates/leaflet.awesome.rotate.css" \
    >"$DEST/folium@0.20.0/templates/leaflet.awesome.rotate.min.css"
chmod 0644 "$DEST/folium@0.20.0/templates/leaflet.awesome.rotate.min.css"

echo "Vendored files:"
(cd "$DEST" && find . -type f ! -name VENDOR.md | sort | xargs du -b | awk '{s+=$1; print} END {printf "total %.2f MB\n", s/1048576}')
