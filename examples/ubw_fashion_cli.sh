#!/usr/bin/env bash
# A UBW dataset watermark from the command line on a Fashion-MNIST subset: keygen → clean
# model → mark (the release; UBW-C crafts it from the clean model) → register → train a
# suspect on the release → claim → verify; then the same claim against an independently
# trained model.
#
#   bash examples/ubw_fashion_cli.sh [TRAIN_IMAGES] [TEST_IMAGES] [EPOCHS] [WORKDIR]
#
# Defaults: 4,000 training and 2,000 test images, 20 epochs, on the GPU if there is one.
# The subset is written as an ImageFolder tree, which every command takes as --data. Needs
# Debian's dataset-fashion-mnist (or set FASHION_ROOT to a folder of the IDX files).
# SCHEME: ubw-c (the default) or ubw-p. UBW-C crafts with the paper's schedule (200 steps,
# the surrogate re-trained 4 times for EPOCHS each): on two CPU cores that is hours at the
# default size. The CPU runs of docs/benchmarks.md used the earlier cheap schedule, about
# 35 minutes there: TARGET=contrast PARAMS="-p steps=40 -p retrains=0" (TARGET picks the
# matched gradient, paper or contrast). PARAMS adds keygen parameters, e.g.
# SCHEME=ubw-p PARAMS="-p decoys=0.1" (docs/benchmarks.md, "UBW-P at 8,000 images").
# Run again with the same WORKDIR to resume: a step whose output is there is skipped (every
# output is written whole or not at all), so an interrupted crafting keeps its clean model.
set -euo pipefail
N=${1:-4000}; T=${2:-2000}; EPOCHS=${3:-20}; W=${4:-ubw-fashion}; SCHEME=${SCHEME:-ubw-c}
case $SCHEME in ubw-c|ubw-p) ;; *) echo "SCHEME must be ubw-c or ubw-p" >&2; exit 2 ;; esac
export CLAIMKIT_PASSPHRASE=${CLAIMKIT_PASSPHRASE:-example} CLAIMKIT_LOG_PASSPHRASE=${CLAIMKIT_LOG_PASSPHRASE:-example}
mkdir -p "$W" && cd "$W"

[ -d data ] || { rm -rf data.part && python3 - "$N" "$T" "${FASHION_ROOT:-}" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
from claimkit.ml.data import load_dataset

n, t, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None
d = load_dataset("fashion-mnist", root=root)
for split, x, y in (("train", d.x_train[:n], d.y_train[:n]), ("test", d.x_test[:t], d.y_test[:t])):
    for i, (image, label) in enumerate(zip(x, y)):
        folder = Path("data.part", split, f"{int(label):02d}")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{i:05d}.png")
EOF
mv data.part data; }

[ -f owner.key ] || claimkit keys new --out owner.key
[ -d reg ] || claimkit registry init reg
if [ "$SCHEME" = ubw-c ]; then
    # Items are the source class's test images (class 0, or another that PARAMS names or
    # draws with -p source=-1): as many as the smallest class has, about a tenth of T, and
    # two claims of half of them each, so the independent model's claim opens fresh items.
    ITEMS=$(for class in data/test/*/; do find "$class" -name '*.png' | wc -l; done | sort -n | head -1)
    OPEN=$((ITEMS / 2))
    [ -d key ] || claimkit keygen --scheme ubw-c --data data -p items="$ITEMS" -p m="$OPEN" \
        ${TARGET:+-p target="$TARGET"} ${PARAMS:-} --out key
    [ -f clean.safetensors ] || claimkit train --data data --epochs "$EPOCHS" --seed 0 --out clean.safetensors
    [ -f release/claimkit-dataset.json ] || { rm -rf release
        claimkit mark key --data data --from clean.safetensors --epochs "$EPOCHS" --out release; }
else
    OPEN=100           # of the default 300 items, drawn from the whole test split
    [ -d key ] || claimkit keygen --scheme "$SCHEME" --data data ${PARAMS:-} --out key
    [ -f release/claimkit-dataset.json ] || { rm -rf release; claimkit mark key --data data --out release; }
fi
[ -f key.receipt ] || claimkit register key --registry reg --identity owner.key --dataset release --out key.receipt
[ -f suspect.safetensors ] || claimkit train --data release --epochs "$EPOCHS" --seed 7 --out suspect.safetensors
claimkit metrics key --data data --model suspect.safetensors
[ -f independent.safetensors ] || claimkit train --data data --epochs "$EPOCHS" --seed 11 --out independent.safetensors
for model in suspect independent; do
    # a claim opens items for good, so a resumed run does not make it again
    [ -f "$model.bundle.json" ] || claimkit claim key --receipt key.receipt --registry reg --model "$model.safetensors" \
        --identity owner.key --open "$OPEN" --out "$model.bundle.json"
    status=0
    claimkit verify "$model.bundle.json" --registry-key reg/log.vkey --model "$model.safetensors" \
        || status=$?
    echo "$model: verify exit $status (0 accepted, 1 rejected)"
done
