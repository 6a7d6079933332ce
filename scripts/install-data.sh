#!/usr/bin/env bash
# Installs the real data the default recipe trains on: Debian's dataset-fashion-mnist
# (the four original IDX files, 70,000 images). Uses sudo when not run as root.
set -euo pipefail
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  echo "dataset-fashion-mnist is installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq dataset-fashion-mnist
