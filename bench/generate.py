"""Writes the wheels of generated projects START..END (two or three versions each, 2.4 on
average: 240,000 files for 100,000 projects) into DIR, one subdirectory per 1,000 projects,
on every core.

Usage: python generate.py DIR START END
"""
import multiprocessing
import sys
from pathlib import Path

from load import wheel


def versions(index):
    return ["1.0", "1.1", "2.0"][: 2 + (index % 5 < 2)]


def write_project(args):
    root, index = args
    directory = Path(root) / f"{index // 1000:03d}"
    directory.mkdir(parents=True, exist_ok=True)
    module = f"bench_project_{index:06d}"
    for version in versions(index):
        filename, data = wheel(module, version)
        (directory / filename).write_bytes(data)
    return len(versions(index))


def main():
    root, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with multiprocessing.Pool() as pool:
        files = sum(pool.imap_unordered(write_project, ((root, i) for i in range(start, end)), 500))
    print(files)


if __name__ == "__main__":
    main()
