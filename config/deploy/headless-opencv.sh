#!/bin/sh
# Inside an image build: replace OpenCV's GUI build (emotiond's dependency, for `emotiond view`, which loads
# libGL and X libraries a container lacks) with the headless build of the same version, from the wheels folder.
# Reinstalled even if pip lists it: uninstalling the GUI build removes the cv2 files both builds share.
# Usage: headless-opencv.sh VENV WHEELS
set -eu
"$1/bin/pip" uninstall -q -y opencv-python
"$1/bin/pip" install -q --no-cache-dir --no-index --find-links "$2" --no-deps --force-reinstall opencv-python-headless
