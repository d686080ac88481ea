#!/usr/bin/env bash
# The system packages the study needs, in one place: `make setup` (and so `make` and
# `make test`) runs this before it creates .venv.
#
#   scripts/system-packages.sh study   what `make` needs: python3-venv, and Debian's
#                                      dataset-fashion-mnist unless Keras can download it
#   scripts/system-packages.sh test    the same, plus chromium for the browser test
#
# Missing packages are installed when that is possible (root on Debian/Ubuntu, with apt-get);
# otherwise it stops (exit 1) with the exact command to run. Only Fashion-MNIST may be left
# out: a machine that can reach Keras' download address gets it from there (`make data`).
set -euo pipefail

purpose="${1:-study}"
case "$purpose" in
  study|test) ;;
  *) echo "system-packages.sh: the purpose must be 'study' or 'test'. Received: $purpose" >&2; exit 2 ;;
esac

fashion_mnist_dir="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
keras_url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-labels-idx1-ubyte.gz"

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ! -d "$fashion_mnist_dir" ]; then
  if python3 - "$keras_url" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=5)
EOF
  then
    echo "system-packages: no $fashion_mnist_dir; Keras' download is reachable, so make data will use it."
  else
    need+=(dataset-fashion-mnist)
  fi
fi
if [ "$purpose" = test ] && [ -z "${FASHION_CHROMIUM:-}" ] \
   && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  need+=(chromium)
fi

[ ${#need[@]} -eq 0 ] && exit 0

command="apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: installing ${need[*]} (apt-get, as root)"
  start=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "system-packages: installed ${need[*]} in $((SECONDS - start)) s"
  exit 0
fi

echo "system-packages: this machine lacks ${need[*]} and this user cannot install them." >&2
if command -v apt-get >/dev/null 2>&1; then
  echo "Run:  sudo apt-get update && sudo $command" >&2
else
  echo "Install the equivalent of: ${need[*]} (Debian/Ubuntu: sudo $command)." >&2
  echo "Fashion-MNIST may instead be put in a folder named by FASHION_MNIST_DIR;" \
       "a Chromium elsewhere is named by FASHION_CHROMIUM." >&2
fi
echo "then run make again." >&2
exit 1
