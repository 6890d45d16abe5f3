"""Make the embedded sample, src/reviewlens/data/imdb_sample.tar.gz, from the full aclImdb archive.

    python scripts/make_sample.py ../shared/data/aclImdb-labeled.tar.gz

Picks, reproducibly, 1,000 positive and 1,000 negative train reviews and 500 + 500 test reviews,
and writes them in the aclImdb layout with the dataset's README and citation. The same input gives
the same bytes out.
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import re
import tarfile
from pathlib import Path

PER_CLASS = {"train": 1000, "test": 500}
SEED = 20110619  # ACL 2011
MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+\.txt)$")
OUT = Path(__file__).resolve().parents[1] / "src" / "reviewlens" / "data" / "imdb_sample.tar.gz"
README = """\
A balanced sample of the Large Movie Review Dataset v1.0, made by reviewlens' scripts/make_sample.py:
1,000 positive and 1,000 negative train reviews, 500 positive and 500 negative test reviews, in the
original aclImdb layout (train/{pos,neg}/ID_RATING.txt, test/{pos,neg}/ID_RATING.txt).

The full dataset: https://ai.stanford.edu/~amaas/data/sentiment/

Citation:
Andrew L. Maas, Raymond E. Daly, Peter T. Pham, Dan Huang, Andrew Y. Ng, and Christopher Potts. 2011.
Learning Word Vectors for Sentiment Analysis. In Proceedings of the 49th Annual Meeting of the
Association for Computational Linguistics: Human Language Technologies, pages 142-150.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path, help="aclImdb .tar.gz (the full labeled data)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    names: dict[tuple[str, str], list[str]] = {}
    with tarfile.open(args.archive, "r|*") as archive:
        for member in archive:
            match = MEMBER.search(member.name)
            if member.isfile() and match:
                names.setdefault((match[1], match[2]), []).append(member.name)
    chosen: set[str] = set()
    for (split, category), members in sorted(names.items()):
        members.sort()
        chosen.update(random.Random(f"{SEED}-{split}-{category}").sample(members, PER_CLASS[split]))

    texts: dict[str, bytes] = {}
    with tarfile.open(args.archive, "r|*") as archive:
        for member in archive:
            if member.name in chosen:
                handle = archive.extractfile(member)
                assert handle is not None
                match = MEMBER.search(member.name)
                assert match is not None
                texts[f"aclImdb/{match[1]}/{match[2]}/{match[3]}"] = handle.read()

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        for name, data in [("aclImdb/README", README.encode()), *sorted(texts.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            out.addfile(info, io.BytesIO(data))
    with (
        open(args.out, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz,
    ):
        gz.write(buffer.getvalue())
    print(f"wrote {args.out}: {len(texts)} reviews, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
