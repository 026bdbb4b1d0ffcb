"""Regenerate the bundled text8-style sample `hf_multinomial/data/resources/enwiki_text8_sample.txt.xz`.

Source: the shortened English Wikipedia dump that gensim 4.4.0 ships as test data
(`enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2`, the first articles
of the dump, as in enwik8). The wheel is fetched with `pip download` (gensim is not
installed) and the XML is filtered with `text8_from_wikipedia_xml`, the port of
Matt Mahoney's wikifil.pl.

Usage:
    python scripts/make_text8_sample.py [--wheel PATH_TO_GENSIM_WHEEL] [--output PATH]
"""

import argparse
import bz2
import glob
import io
import lzma
import os
import subprocess
import sys
import tempfile
import zipfile

from hf_multinomial.data import bundled_text8_path, text8_from_wikipedia_xml


GENSIM_VERSION = "4.4.0"
MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def download_wheel(directory: str) -> str:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"gensim=={GENSIM_VERSION}", "-d", directory],
        check=True,
    )
    wheels = glob.glob(os.path.join(directory, f"gensim-{GENSIM_VERSION}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip did not leave a gensim {GENSIM_VERSION} wheel in {directory!r}.")
    return wheels[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", help="an already downloaded gensim 4.4.0 wheel (skips pip download)")
    parser.add_argument("--output", default=bundled_text8_path(), help="where to write the .xz file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(tmp)
        with zipfile.ZipFile(wheel) as archive:
            dump = archive.read(MEMBER)

    text = text8_from_wikipedia_xml(io.BytesIO(bz2.decompress(dump)))
    data = text.encode("ascii")
    compressed = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "wb") as f:
        f.write(compressed)
    print(f"{len(data):,} characters, {len(compressed):,} bytes compressed -> {args.output}")


if __name__ == "__main__":
    main()
