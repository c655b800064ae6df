"""The package's module graph as docs/architecture.md draws it: `module -> what it imports`, each
module below everything it imports (alexnet.pipeline.imports).

    alexnet-imports
"""

from __future__ import annotations

import argparse
import sys

from alexnet.cli import run_tool
from alexnet.pipeline.imports import layered, module_graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alexnet-imports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return run_tool(lambda args: print("\n".join(layered(module_graph()))), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
