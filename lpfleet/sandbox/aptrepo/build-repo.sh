#!/usr/bin/env bash
# Build the sandbox's signed apt repository standing in for NVIDIA's libnvidia-container repo.
#
#   build-repo.sh OUT_DIR VERSION [VERSION...]
#
# Layout under OUT_DIR (served as the web root):
#   stable/deb/<arch>/        flat repository ("deb [signed-by=...] <url>/stable/deb/$(ARCH) /"): the four packages at
#                             every VERSION, Packages(.gz), Release, InRelease and Release.gpg signed by the sandbox key
#   gpgkey                    the sandbox key, armored (what NVIDIA serves at .../libnvidia-container/gpgkey)
#   gpgkey-substituted        a different key, armored, that signed nothing (for the substituted-key test)
#   fingerprint               the sandbox key's primary fingerprint, 40 upper-case hex digits and a newline
#   fingerprint-substituted   the other key's fingerprint
# Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg. Keys are generated here; no private key is left in OUT_DIR.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR VERSION [VERSION...]" >&2
  exit 2
fi
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
arch=${ARCH:-$(dpkg --print-architecture)}
packages=(libnvidia-container1 libnvidia-container-tools nvidia-container-toolkit-base nvidia-container-toolkit)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"

generate_key() {  # name email -> prints the primary fingerprint
  gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
      --quick-gen-key "$1 <$2>" ed25519 sign never >/dev/null 2>&1
  gpg --batch --with-colons --list-keys "$2" | awk -F: '$1 == "fpr" { print $10; exit }'
}
signing_fpr=$(generate_key "lpfleet sandbox apt repository" "apt@lpfleet-sandbox.invalid")
other_fpr=$(generate_key "lpfleet sandbox substituted key" "substituted@lpfleet-sandbox.invalid")

repo="$out/stable/deb/$arch"
mkdir -p "$repo"
for version in "$@"; do
  for pkg in "${packages[@]}"; do
    root="$work/build/$pkg-$version"
    mkdir -p "$root"
    cp -a "$here/packages/$pkg/." "$root/"
    # Every text file carries @VERSION@ / @ARCH@ placeholders (control files, scripts, docs).
    grep -rlZ -e '@VERSION@' -e '@ARCH@' "$root" | xargs -0 -r sed -i -e "s/@VERSION@/$version/g" -e "s/@ARCH@/$arch/g"
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -path "$root/DEBIAN" -prune -o -type f -exec chmod go-w {} +
    dpkg-deb --root-owner-group -Zxz --build "$root" "$repo/${pkg}_${version}_${arch}.deb" >/dev/null
  done
done

(
  cd "$repo"
  apt-ftparchive packages . >Packages
  gzip -9nc Packages >Packages.gz
  apt-ftparchive \
    -o APT::FTPArchive::Release::Origin="lpfleet-sandbox libnvidia-container" \
    -o APT::FTPArchive::Release::Label="libnvidia-container" \
    -o APT::FTPArchive::Release::Architectures="$arch" \
    release . >Release
  gpg --batch --yes --local-user "$signing_fpr" --digest-algo SHA512 --clearsign -o InRelease Release
  gpg --batch --yes --local-user "$signing_fpr" --digest-algo SHA512 --armor --detach-sign -o Release.gpg Release
)

gpg --batch --armor --export "$signing_fpr" >"$out/gpgkey"
gpg --batch --armor --export "$other_fpr" >"$out/gpgkey-substituted"
echo "$signing_fpr" >"$out/fingerprint"
echo "$other_fpr" >"$out/fingerprint-substituted"
echo "built $repo: ${#packages[@]} packages x $# versions, signed by $signing_fpr"
