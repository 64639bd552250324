"""`python -m pipeline.emulator --port P --api-key K --store FILE ...`: run the SendGrid emulator."""

from __future__ import annotations

import sys

from pipeline.emulator.command import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
